# Read by flask (python-dotenv): a plain `flask run` from the project root starts the VTT app.
FLASK_APP=vtt_app

from app import app
from portico_sdk import serve_wsgi

serve_wsgi(app)

from app import app
from portico_sdk import serve_asgi

serve_asgi(app)

"""The WSGI entry point: `gunicorn wsgi:app`, and FLASK_APP for `flask db` / `flask hub`."""

from volunteer_hub.app import create_app

app = create_app()

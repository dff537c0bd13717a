"""A one-file Django project. A real project's plugin.py is the last three lines, with
DJANGO_SETTINGS_MODULE set: `serve_wsgi(get_wsgi_application())`, or for Django's ASGI handler
`serve_asgi(get_asgi_application())`. SCRIPT_NAME is the mount prefix: reverse() includes it."""
from django.conf import settings
from django.http import JsonResponse
from django.urls import path, reverse

settings.configure(DEBUG=False, SECRET_KEY="example-only", ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__,
                   MIDDLEWARE=["django.middleware.common.CommonMiddleware"])


def index(request):
    return JsonResponse({"hello": "django", "item_7": reverse("item", args=[7])})


def item(request, item_id):
    return JsonResponse({"id": item_id, "q": request.GET.get("q", "")})


urlpatterns = [path("", index), path("items/<int:item_id>", item, name="item")]

from django.core.wsgi import get_wsgi_application  # noqa: E402  (after settings)

from portico_sdk import serve_wsgi  # noqa: E402

serve_wsgi(get_wsgi_application())

"""A small Django project with django-rest-durin 1.1.0, for tests/it/durin.rs: migrates the database
named by argv[1] (sqlite:///path or postgres://user@host:port/name), then makes users, clients and
tokens through Django's and durin's own APIs (User.objects.create_user, make_password,
durin.models.Client, AuthToken.objects.create), and prints what it made as JSON on stdout."""
import json
import sys
from datetime import timedelta
from urllib.parse import urlparse

from django.conf import settings

url = urlparse(sys.argv[1])
if url.scheme == "sqlite":
    database = {"ENGINE": "django.db.backends.sqlite3", "NAME": url.path}
else:
    database = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": url.path.lstrip("/"),
        "USER": url.username or "postgres",
        "PASSWORD": url.password or "",
        "HOST": url.hostname or "127.0.0.1",
        "PORT": str(url.port or 5432),
    }

settings.configure(
    DEBUG=False,
    SECRET_KEY="tessera-durin-import-test",
    USE_TZ=True,
    DATABASES={"default": database},
    INSTALLED_APPS=[
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "rest_framework",
        "durin",
    ],
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    # Django's default first (PBKDF2-SHA256); Argon2 for the user made with it.
    PASSWORD_HASHERS=[
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.Argon2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ],
)

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.core.management import call_command  # noqa: E402
from durin.models import AuthToken, Client  # noqa: E402

call_command("migrate", verbosity=0)
User = get_user_model()

PASSWORDS = {
    "alice": "alice's django password",
    "bob": "bob's argon2 password",
    "carol": "carol's md5 password",
    "dave": "dave's password",
    "erin": "erin's password",
}
alice = User.objects.create_user("alice", password=PASSWORDS["alice"])
bob = User.objects.create_user("bob")
bob.password = make_password(PASSWORDS["bob"], hasher="argon2")
bob.save()
carol = User.objects.create_user("carol")
carol.password = make_password(PASSWORDS["carol"], hasher="md5")
carol.save()
dave = User.objects.create_user("dave", password=PASSWORDS["dave"], is_active=False)
erin = User.objects.create_user("erin", password=PASSWORDS["erin"], is_staff=True)

web = Client.objects.create(name="web", token_ttl=timedelta(days=1))
ios = Client.objects.create(name="ios", token_ttl=timedelta(days=7, hours=2), throttle_rate="100/hour")
cli = Client.objects.create(name="cli", token_ttl=timedelta(minutes=90), throttle_rate="30/m")

tokens = []
for user, client, delta in [
    (alice, web, None),
    (alice, ios, None),
    (bob, web, None),
    (erin, cli, None),
    (dave, web, None),
    # Expired a minute ago.
    (bob, ios, timedelta(seconds=-60)),
]:
    token = AuthToken.objects.create(user, client, delta_ttl=delta)
    tokens.append(
        {
            "user": user.username,
            "client": client.name,
            "token": token.token,
            "expired": token.has_expired,
        }
    )

print(
    json.dumps(
        {
            "passwords": PASSWORDS,
            "hashes": {u.username: u.password.split("$", 1)[0] for u in User.objects.all()},
            "tokens": tokens,
        }
    )
)

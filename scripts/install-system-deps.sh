#!/bin/sh
# System packages the tests (python3; nats-server for the NATS tests; chromium for the status page test; FastAPI, Starlette, Flask, Django, uvicorn and pip for the Python SDK tests) and the benchmark (wrk, nginx) need, on Debian or Ubuntu. Safe to run again.
set -eu
PKGS="python3 nats-server chromium wrk nginx-light python3-fastapi python3-starlette python3-flask python3-django python3-uvicorn python3-pip"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null

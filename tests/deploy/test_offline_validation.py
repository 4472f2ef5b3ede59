"""The load balancer and the Kubernetes manifests, validated offline.

- ``deploy/nginx/robutler.conf`` passes ``nginx -t`` (Debian's nginx; .ci/run installs it),
  inside a main config whose files all live in a temporary folder; the upstream host
  ``robutler`` (a compose service name) is pointed at 127.0.0.1 for the test, since nginx
  resolves upstream names when it reads the config.
- Every manifest of ``deploy/k8s/`` validates against the Kubernetes API's JSON schemas
  (``kubernetes-validate``, which bundles them: no cluster, no network), strictly (no
  unknown fields).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from .support import DEPLOY

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
SITE = DEPLOY / "nginx" / "robutler.conf"


def test_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    if NGINX is None:
        pytest.skip("nginx is not installed here (apt-get install nginx-light; .ci/run installs it)")
    site = SITE.read_text().replace("server robutler:8000", "server 127.0.0.1:8000")
    (tmp_path / "robutler.conf").write_text(site)
    user = "user root;\n" if os.geteuid() == 0 else ""
    (tmp_path / "nginx.conf").write_text(
        f"{user}pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{ client_body_temp_path {tmp_path}; proxy_temp_path {tmp_path}; include {tmp_path}/robutler.conf; }}\n"
    )
    result = subprocess.run([NGINX, "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr and "test is successful" in result.stderr


def test_nginx_config_suits_streaming() -> None:
    text = SITE.read_text()
    main = text.split("location / {", 1)[1]
    for directive in ("proxy_buffering off;", "proxy_http_version 1.1;", "proxy_set_header X-Request-Id",
                      "proxy_set_header X-Real-IP $remote_addr;"):
        assert directive in main, directive
    read = int(re.search(r"proxy_read_timeout (\d+)s;", main).group(1))  # type: ignore[union-attr]
    config = YAML(typ="safe", pure=True).load((DEPLOY / "robutler.yaml").read_text())
    assert read > config["server"]["request_timeout"], "nginx would cut streams the server still serves"
    assert "location = /health" in text
    # The Ingress carries the same settings.
    ingress = YAML(typ="safe", pure=True).load((DEPLOY / "k8s" / "ingress.yaml").read_text())
    ann = ingress["metadata"]["annotations"]
    assert ann["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(ann["nginx.ingress.kubernetes.io/proxy-read-timeout"]) == read


def manifests() -> list[Path]:
    return sorted(p for p in (DEPLOY / "k8s").glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.parametrize("path", manifests(), ids=lambda p: p.name)
def test_k8s_manifest_matches_the_api_schema(path: Path) -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is in requirements-dev.txt")
    version = kv.latest_version()
    for doc in YAML(typ="safe", pure=True).load_all(path.read_text()):
        if doc is None:
            continue
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as exc:
            pytest.fail(f"{path.name}: {doc['kind']} {doc['metadata']['name']}: {exc.message} at {list(exc.path)}")

"""TLS for the MQTT clients of the edge and central: one place that turns the configured files
into the client's TLS context (TLS 1.2 or newer; the broker's certificate and host name are
always verified)."""

from __future__ import annotations

import ssl
from pathlib import Path

import paho.mqtt.client as mqtt


def tls_context(
    ca_file: Path | None, cert_file: Path | None = None, key_file: Path | None = None
) -> ssl.SSLContext:
    """A client context that checks the broker against `ca_file` (the system CAs when None)
    and presents `cert_file`/`key_file` when given (a broker with `require_certificate`)."""
    if (cert_file is None) != (key_file is None):
        raise ValueError("a client certificate and its key go together")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and host name checks
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file is not None:
        ctx.load_verify_locations(str(ca_file))
    else:
        ctx.load_default_certs()
    if cert_file is not None:
        ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


def use_tls(
    client: mqtt.Client, ca_file: Path | None, cert_file: Path | None = None,
    key_file: Path | None = None,
) -> None:
    """Make `client` connect over TLS with `tls_context`."""
    client.tls_set_context(tls_context(ca_file, cert_file, key_file))

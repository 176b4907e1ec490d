"""`smartgate broker config`: write a secured mosquitto configuration for a site (`smartgate
broker run`, the embedded demo broker, is registered by tools/cli.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from smartgate.cli import CommandGroups


def broker_config(args: argparse.Namespace) -> int:
    """Write the files and say where they are."""
    from central.broker_config import TlsFiles, parse_node_spec, write_broker_config

    try:
        nodes = [parse_node_spec(spec) for spec in args.node]
        tls = None
        if args.tls_cert or args.tls_key:
            if not (args.tls_cert and args.tls_key):
                raise ValueError("--tls-cert and --tls-key go together")
            if args.require_client_cert and not args.tls_ca:
                raise ValueError("--require-client-cert needs --tls-ca (the CA of the clients)")
            tls = TlsFiles(Path(args.tls_cert), Path(args.tls_key),
                           Path(args.tls_ca) if args.tls_ca else None,
                           require_client_cert=args.require_client_cert)
        files = write_broker_config(
            Path(args.out), args.site, nodes, port=args.port, bind=args.bind, tls=tls,
            tls_port=args.tls_port, central_workers=args.central_workers,
            readers=tuple(args.reader or ()),
        )
    except (ValueError, OSError) as exc:
        print(f"error: {exc}")
        return 2
    print(f"wrote {files.conf}, {files.passwords}, {files.acl}")
    print(f"generated credentials (keep secret, give each node its own): {files.credentials}")
    if tls is not None:
        print(f"plain MQTT on 127.0.0.1:{args.port} only; TLS on {args.bind}:{args.tls_port}")
    print(f"start with: mosquitto -c {files.conf}")
    return 0


def register(commands: CommandGroups) -> None:
    """Attach `smartgate broker config`."""
    cfg = commands.broker.add_parser("config", help="write mosquitto.conf, password file and ACL")
    cfg.add_argument("--site", required=True, help="site id, e.g. huunghi")
    cfg.add_argument("--node", action="append", required=True, metavar="NODE=LANE[,LANE]",
                     help="an edge node and its lanes (repeat)")
    cfg.add_argument("--out", default="deploy/mosquitto", help="output folder")
    cfg.add_argument("--port", type=int, default=1883, help="plain MQTT listener port")
    cfg.add_argument("--bind", default="0.0.0.0", help="listen address")
    cfg.add_argument("--tls-cert", help="server certificate (PEM) for the TLS listener")
    cfg.add_argument("--tls-key", help="server private key (PEM)")
    cfg.add_argument("--tls-ca", help="CA certificate (PEM)")
    cfg.add_argument("--tls-port", type=int, default=8883, help="TLS listener port")
    cfg.add_argument("--require-client-cert", action="store_true",
                     help="TLS clients must present a certificate signed by --tls-ca")
    cfg.add_argument("--central-workers", type=int, default=4,
                     help="central users central-w1..wN for `central run --workers` (default 4)")
    cfg.add_argument("--reader", action="append", metavar="USER",
                     help="a platform user that may only read the decision topics (repeat)")
    cfg.set_defaults(func=broker_config)

#!/usr/bin/python3
"""The fake VPS's metadata server: answers on 169.254.169.254:80 (inside its own network
namespace, see metadata-net.sh) with what the VPS was created with, like a cloud's.

  /latest/user-data                the user_data, byte for byte (as EC2 and Vultr serve it)
  /latest/meta-data/               the names below, one a line
  /latest/meta-data/instance-id    the instance id
  /latest/meta-data/local-hostname the hostname
  /latest/meta-data/public-keys    the SSH keys registered for root, one a line

The data comes from the NoCloud seed the provider wrote before boot; it is read once, at
start. Tells systemd it is ready (Type=notify) once the socket listens.
"""
import http.server
import json
import os
import socket
import socketserver
import sys

SEED = "/var/lib/cloud/seed/nocloud"


def read(name):
    try:
        with open(os.path.join(SEED, name), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def routes():
    user_data = read("user-data")
    meta_raw = read("meta-data") or b"{}"
    try:
        meta = json.loads(meta_raw)  # local-vps writes meta-data as JSON (which is YAML)
    except ValueError:
        meta = {}
    keys = meta.get("public-keys") or []
    fields = {
        "instance-id": str(meta.get("instance-id", "")).encode(),
        "local-hostname": str(meta.get("local-hostname", "")).encode(),
        "public-keys": "".join(k + "\n" for k in keys).encode(),
    }
    table = {"/latest/meta-data/" + k: v for k, v in fields.items()}
    table["/latest/meta-data/"] = "".join(k + "\n" for k in fields).encode()
    table["/latest/meta-data"] = table["/latest/meta-data/"]
    if user_data is not None:
        table["/latest/user-data"] = user_data
    return table


class Handler(http.server.BaseHTTPRequestHandler):
    table = {}
    server_version = "fake-vps-metadata/1"

    def do_GET(self):
        body = self.table.get(self.path.split("?", 1)[0])
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.client_address[0], fmt % args))


class Server(http.server.ThreadingHTTPServer):
    def server_bind(self):
        # HTTPServer.server_bind resolves the address's name (socket.getfqdn): in the
        # namespace there is no DNS, so that would hang until the resolver times out.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def notify_ready():
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(path)
        s.sendall(b"READY=1")


def main():
    addr = sys.argv[1] if len(sys.argv) > 1 else "169.254.169.254"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 80
    Handler.table = routes()
    server = Server((addr, port), Handler)
    notify_ready()
    server.serve_forever()


if __name__ == "__main__":
    main()

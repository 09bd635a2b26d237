#!/usr/bin/python3
"""s3-fault-proxy.py - an HTTP/1.1 proxy on 127.0.0.1 in front of an S3
endpoint that injects faults, for diskvault's S3 tests.

usage: s3-fault-proxy.py --upstream http://127.0.0.1:PORT --port-file FILE
                         [--log FILE] [--rate BYTES_PER_SECOND] [--fault RULE]...
                         [--expired-token TOKEN]

It listens on a free loopback port (written to --port-file once ready),
forwards every request unchanged (the Host header too, so SigV4 signatures
stay valid) and logs one line per request:
    <seq> <METHOD> <path?query> <status> <request-body-bytes-received> [md5|-]
Status "reset" and "stall" mark injected faults. Requests forwarded upstream
carry a sixth field: "md5" when the request had a Content-MD5 header.

Rules (each counts requests of METHOD, 1-based, "*" = any method):
    slowdown:METHOD:FIRST:COUNT  answer 503 SlowDown to requests FIRST..FIRST+COUNT-1
    reset:METHOD:NTH             read half of the NTH request's body, then reset the connection
    stall:METHOD:NTH:SECONDS     hold the NTH request SECONDS before forwarding it
    deny:METHOD:NTH[:TEXT]       answer 403 AccessDenied to the NTH request (whose path
                                 contains TEXT, when given): a request that cannot succeed
    delerr:NTH:CODE              answer the NTH DeleteObjects request (POST ?delete) with
                                 200 and a DeleteResult that lists every key of its body
                                 as an <Error> with CODE; nothing is forwarded or deleted
    noimpl:METHOD:TEXT           answer 501 NotImplemented to every METHOD request whose
                                 path contains TEXT (an endpoint without that call)
    flip:METHOD:NTH              invert one byte in the middle of the NTH request's body
                                 and forward it (data damaged in transit: the server
                                 must refuse it by its checksum)
    cut:METHOD:NTH[:TEXT]        forward the NTH request (whose path contains TEXT, when
                                 given), send the answer's headers and half its body,
                                 then reset the connection (a response dropped in transit)
    short:METHOD:NTH[:TEXT]      forward it, answer with the first half of the body and a
                                 Content-Length that matches (a body that is complete as
                                 far as HTTP can tell, but shorter than asked for)

--expired-token TOKEN answers every request whose X-Amz-Security-Token is TOKEN
as S3 answers a request signed with an expired session token: 400 with the
error document <Error><Code>ExpiredToken</Code><Message>The provided token has
expired.</Message><Token-0>TOKEN</Token-0><RequestId/><HostId/></Error> (no body
for HEAD); the request is not forwarded. Other requests pass.
--rate throttles request bodies (all connections together) so a test can
kill a client in the middle of an upload.
"""
import argparse
import http.client
import http.server
import os
import socket
import struct
import sys
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
import xml.sax.saxutils

TEXT_RULES = ("deny", "cut", "short")  # rules whose NTH counts only requests with TEXT
HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "expect"}


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.seq = 0
        self.per_method = {}
        self.rules = [r.split(":") for r in args.fault]
        self.rate = args.rate
        self.expired_token = args.expired_token
        self.rate_next = time.monotonic()
        self.log = open(args.log, "a", buffering=1) if args.log else None
        u = urllib.parse.urlsplit(args.upstream)
        self.up_host, self.up_port = u.hostname, u.port or 80

    def count(self, method, path):
        with self.lock:
            self.seq += 1
            self.per_method[method] = self.per_method.get(method, 0) + 1
            for i, r in enumerate(self.rules):
                if len(r) > 3 and r[0] in TEXT_RULES and (r[1] in ("*", method)) and r[3] in path:
                    self.per_method[("deny", i)] = self.per_method.get(("deny", i), 0) + 1
            return self.seq, self.per_method[method], self.seq

    def text_count(self, i):
        return self.per_method.get(("deny", i), 0)

    def fault_for(self, method, nth, seq, path):
        for i, r in enumerate(self.rules):
            kind, m = r[0], r[1]
            n = seq if m == "*" else nth
            if kind in TEXT_RULES and len(r) > 3:
                if r[3] not in path or (m != "*" and m != method):
                    continue
                n = self.text_count(i)
            if m != "*" and m != method:
                continue
            if kind == "slowdown" and int(r[2]) <= n < int(r[2]) + int(r[3]):
                return ("slowdown",)
            if kind == "reset" and n == int(r[2]):
                return ("reset",)
            if kind == "stall" and n == int(r[2]):
                return ("stall", float(r[3]))
            if kind == "deny" and n == int(r[2]):
                return ("deny",)
            if kind == "noimpl" and r[2] in path:
                return ("noimpl",)
            if kind == "flip" and n == int(r[2]):
                return ("flip",)
            if kind in ("cut", "short") and n == int(r[2]):
                return (kind,)
        if method == "POST" and "?delete" in path:
            with self.lock:
                self.per_method["delete"] = self.per_method.get("delete", 0) + 1
                nth_delete = self.per_method["delete"]
            for r in self.rules:
                if r[0] == "delerr" and int(r[1]) == nth_delete:
                    return ("delerr", r[2])
        return None

    def throttle(self, n):
        if not self.rate:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now, self.rate_next)
            self.rate_next = start + n / self.rate
            wait = self.rate_next - now
        if wait > 0:
            time.sleep(wait)

    def write_log(self, line):
        if self.log:
            with self.lock:
                self.log.write(line + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None

    def log_message(self, fmt, *args):
        pass

    def _read_body(self, length, limit=None):
        chunks, got = [], 0
        want = length if limit is None else min(length, limit)
        while got < want:
            part = self.rfile.read(min(65536, want - got))
            if not part:
                break
            self.state.throttle(len(part))
            chunks.append(part)
            got += len(part)
        return b"".join(chunks)

    def _reset(self):
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _handle(self):
        st = self.state
        seq, nth, _ = st.count(self.command, self.path)
        fault = st.fault_for(self.command, nth, seq, self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if fault and fault[0] == "reset":
            body = self._read_body(length, length // 2)
            st.write_log("%d %s %s reset %d" % (seq, self.command, self.path, len(body)))
            self._reset()
            return
        body = self._read_body(length)
        if st.expired_token and self.headers.get("X-Amz-Security-Token") == st.expired_token:
            # S3 echoes the token it refuses in Token-0.
            esc = st.expired_token.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            msg = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ExpiredToken</Code>'
                   "<Message>The provided token has expired.</Message><Token-0>%s</Token-0>"
                   "<RequestId>FP%08X</RequestId><HostId>fault-proxy-host</HostId></Error>" % (esc, seq)).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/xml")
            self.send_header("x-amz-request-id", "FP%08X" % seq)
            self.send_header("x-amz-id-2", "fault-proxy-host")
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(msg)
            st.write_log("%d %s %s 400 %d" % (seq, self.command, self.path, len(body)))
            return
        if fault and fault[0] in ("slowdown", "deny"):
            slow = fault[0] == "slowdown"
            msg = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code>'
                   b"<Message>%s</Message><RequestId>fault-proxy</RequestId></Error>" %
                   ((b"SlowDown", b"Please reduce your request rate.") if slow else (b"AccessDenied", b"Access Denied")))
            self.send_response(503 if slow else 403)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(msg)
            st.write_log("%d %s %s %d %d" % (seq, self.command, self.path, 503 if slow else 403, len(body)))
            return
        if fault and fault[0] in ("noimpl", "delerr"):
            if fault[0] == "noimpl":
                status = 501
                msg = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NotImplemented</Code>'
                       b"<Message>A header you provided implies functionality that is not implemented."
                       b"</Message><RequestId>fault-proxy</RequestId></Error>")
            else:
                status = 200
                keys = [e.text or "" for e in ET.fromstring(body).iter()
                        if e.tag.rsplit("}", 1)[-1] == "Key"]
                msg = b'<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult>' + b"".join(
                    b"<Error><Key>%s</Key><Code>%s</Code><Message>injected by the fault proxy</Message></Error>" %
                    (xml.sax.saxutils.escape(k).encode(), fault[1].encode()) for k in keys) + b"</DeleteResult>"
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            st.write_log("%d %s %s %s %d" % (seq, self.command, self.path,
                                             "501" if status == 501 else "delerr", len(body)))
            return
        if fault and fault[0] == "flip" and body:
            mid = len(body) // 2
            body = body[:mid] + bytes([body[mid] ^ 0xFF]) + body[mid + 1:]
        if fault and fault[0] == "stall":
            st.write_log("%d %s %s stall %d" % (seq, self.command, self.path, len(body)))
            time.sleep(fault[1])
        conn = http.client.HTTPConnection(st.up_host, st.up_port, timeout=600)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in self.headers.items():
                if k.lower() not in HOP:
                    conn.putheader(k, v)
            conn.endheaders(body if body or length else None)
            resp = conn.getresponse()
            data = resp.read()
        except OSError as e:
            st.write_log("%d %s %s upstream-error %d" % (seq, self.command, self.path, len(body)))
            self.send_error(502, str(e))
            return
        finally:
            conn.close()
        cut = fault[0] if fault and fault[0] in ("cut", "short") and len(data) > 1 else None
        sent = data[:len(data) // 2] if cut else data
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in HOP and k.lower() != "content-length":
                self.send_header(k, v)
        cl = resp.getheader("Content-Length")
        self.send_header("Content-Length", cl if self.command == "HEAD" and cl else
                         str(len(sent if cut == "short" else data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(sent)
        if cut:
            st.write_log("%d %s %s %s %d" % (seq, self.command, self.path, cut, len(sent)))
            if cut == "cut":
                self.wfile.flush()
                self._reset()
            return
        st.write_log("%d %s %s %d %d %s" % (seq, self.command, self.path, resp.status, len(body),
                                            "md5" if self.headers.get("Content-MD5") else "-"))

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log")
    ap.add_argument("--rate", type=float, default=0)
    ap.add_argument("--fault", action="append", default=[])
    ap.add_argument("--expired-token")
    args = ap.parse_args()
    Handler.state = State(args)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, args.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

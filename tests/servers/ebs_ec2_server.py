#!/usr/bin/python3
"""Local EBS direct + EC2 endpoint for diskvault's tests (loopback only).

Speaks the EBS direct REST-JSON protocol and the EC2 query protocol, checks
every SigV4 signature with botocore's signer, checks block checksums and the
LINEAR aggregated checksum, enforces an IAM policy document, keeps its state
on disk and injects faults. Usage and behaviour: README-ebs-ec2.md.
"""
import argparse
import base64
import csv
import datetime
import fnmatch
import hashlib
import hmac
import io
import json
import os
import re
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.sax.saxutils import escape as xml_escape

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

BLOCK = 524288
EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
EMPTY_SHA = hashlib.sha256(b"").hexdigest()

# The shipped catalog subset (public facts; see docs and the launch code's
# catalog for sources and date): type, arch, vcpus, memory GiB, burstable,
# baseline % per vCPU, ena, nvme, boot modes.
CATALOG_CSV = """type,arch,vcpus,memory_gib,burstable,baseline_pct_per_vcpu,ena,nvme,boot_modes
t3.nano,x86_64,2,0.5,true,5,required,required,legacy-bios;uefi
t3.micro,x86_64,2,1,true,10,required,required,legacy-bios;uefi
t3.small,x86_64,2,2,true,20,required,required,legacy-bios;uefi
t3.medium,x86_64,2,4,true,20,required,required,legacy-bios;uefi
t3.large,x86_64,2,8,true,30,required,required,legacy-bios;uefi
t3.xlarge,x86_64,4,16,true,40,required,required,legacy-bios;uefi
t3.2xlarge,x86_64,8,32,true,40,required,required,legacy-bios;uefi
t3a.medium,x86_64,2,4,true,20,required,required,legacy-bios;uefi
t3a.large,x86_64,2,8,true,30,required,required,legacy-bios;uefi
t3a.xlarge,x86_64,4,16,true,40,required,required,legacy-bios;uefi
t3a.2xlarge,x86_64,8,32,true,40,required,required,legacy-bios;uefi
t4g.medium,arm64,2,4,true,20,required,required,uefi
t4g.large,arm64,2,8,true,30,required,required,uefi
t4g.xlarge,arm64,4,16,true,40,required,required,uefi
t4g.2xlarge,arm64,8,32,true,40,required,required,uefi
m5.large,x86_64,2,8,false,,required,required,legacy-bios;uefi
m5.xlarge,x86_64,4,16,false,,required,required,legacy-bios;uefi
m5.2xlarge,x86_64,8,32,false,,required,required,legacy-bios;uefi
m5.4xlarge,x86_64,16,64,false,,required,required,legacy-bios;uefi
m6i.large,x86_64,2,8,false,,required,required,legacy-bios;uefi
m6i.xlarge,x86_64,4,16,false,,required,required,legacy-bios;uefi
m6i.2xlarge,x86_64,8,32,false,,required,required,legacy-bios;uefi
m6i.4xlarge,x86_64,16,64,false,,required,required,legacy-bios;uefi
m6i.8xlarge,x86_64,32,128,false,,required,required,legacy-bios;uefi
m7g.large,arm64,2,8,false,,required,required,uefi
m7g.xlarge,arm64,4,16,false,,required,required,uefi
m7g.2xlarge,arm64,8,32,false,,required,required,uefi
c5.large,x86_64,2,4,false,,required,required,legacy-bios;uefi
c5.xlarge,x86_64,4,8,false,,required,required,legacy-bios;uefi
c5.2xlarge,x86_64,8,16,false,,required,required,legacy-bios;uefi
c5.4xlarge,x86_64,16,32,false,,required,required,legacy-bios;uefi
c5.9xlarge,x86_64,36,72,false,,required,required,legacy-bios;uefi
c6i.large,x86_64,2,4,false,,required,required,legacy-bios;uefi
c6i.xlarge,x86_64,4,8,false,,required,required,legacy-bios;uefi
c6i.2xlarge,x86_64,8,16,false,,required,required,legacy-bios;uefi
c6i.4xlarge,x86_64,16,32,false,,required,required,legacy-bios;uefi
c6i.8xlarge,x86_64,32,64,false,,required,required,legacy-bios;uefi
r5.large,x86_64,2,16,false,,required,required,legacy-bios;uefi
r5.xlarge,x86_64,4,32,false,,required,required,legacy-bios;uefi
r5.2xlarge,x86_64,8,64,false,,required,required,legacy-bios;uefi
r5.4xlarge,x86_64,16,128,false,,required,required,legacy-bios;uefi
r6i.large,x86_64,2,16,false,,required,required,legacy-bios;uefi
r6i.xlarge,x86_64,4,32,false,,required,required,legacy-bios;uefi
r6i.2xlarge,x86_64,8,64,false,,required,required,legacy-bios;uefi
r6i.4xlarge,x86_64,16,128,false,,required,required,legacy-bios;uefi
"""

# EBS error code -> HTTP status (service model).
EBS_STATUS = {
    "AccessDeniedException": 403,
    "ValidationException": 400,
    "ResourceNotFoundException": 404,
    "RequestThrottledException": 400,
    "ThrottlingException": 400,
    "ServiceQuotaExceededException": 402,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
    "ConflictException": 409,
    "ConcurrentLimitExceededException": 400,
    "UnrecognizedClientException": 403,
    "InvalidSignatureException": 403,
    "IncompleteSignatureException": 403,
    "MissingAuthenticationTokenException": 403,
}


class ApiError(Exception):
    def __init__(self, code, message, status=None, reason=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.reason = reason


def now_iso(t=None):
    t = time.time() if t is None else t
    return datetime.datetime.utcfromtimestamp(t).strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % int((t % 1) * 1000)


def b64sha(data):
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def atomic_write(path, data):
    tmp = "%s.tmp.%d.%d" % (path, os.getpid(), threading.get_ident())
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class State:
    """Snapshots, images, instances under DIR/state (JSON + block files)."""

    def __init__(self, root, owner, region, secret):
        self.root = root
        self.owner = owner
        self.region = region
        self.secret = secret.encode()
        self.lock = threading.RLock()
        for sub in ("snapshots", "blocks"):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
        self.snaps = {}
        for sid in os.listdir(os.path.join(root, "snapshots")):
            meta = os.path.join(root, "snapshots", sid, "meta.json")
            if os.path.exists(meta):
                with open(meta) as f:
                    s = json.load(f)
                s["blocks"] = self._load_blocks(sid)
                self.snaps[sid] = s
        self.ec2_path = os.path.join(root, "ec2.json")
        self.ec2 = {"images": {}, "instances": {}, "tokens": {}}
        if os.path.exists(self.ec2_path):
            with open(self.ec2_path) as f:
                self.ec2 = json.load(f)
        self.puts_since_start = {}

    # ---- persistence
    def _load_blocks(self, sid):
        blocks = {}
        p = os.path.join(self.root, "snapshots", sid, "blocks.log")
        if os.path.exists(p):
            with open(p) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 2 and len(parts[1]) == 64:
                        blocks[int(parts[0])] = parts[1]
        return blocks

    def save_snap(self, s):
        d = os.path.join(self.root, "snapshots", s["SnapshotId"])
        os.makedirs(d, exist_ok=True)
        meta = {k: v for k, v in s.items() if k != "blocks"}
        atomic_write(os.path.join(d, "meta.json"), json.dumps(meta, indent=1).encode())

    def append_block(self, sid, index, digest_hex):
        p = os.path.join(self.root, "snapshots", sid, "blocks.log")
        with open(p, "a") as f:
            f.write("%d %s\n" % (index, digest_hex))

    def save_ec2(self):
        atomic_write(self.ec2_path, json.dumps(self.ec2, indent=1).encode())

    def block_path(self, digest_hex):
        return os.path.join(self.root, "blocks", digest_hex[:2], digest_hex)

    def store_block(self, data):
        h = hashlib.sha256(data).hexdigest()
        p = self.block_path(h)
        if not os.path.exists(p):
            os.makedirs(os.path.dirname(p), exist_ok=True)
            atomic_write(p, data)
        return h

    def read_block(self, digest_hex):
        with open(self.block_path(digest_hex), "rb") as f:
            return f.read()

    # ---- snapshot views
    def snapshot(self, sid):
        s = self.snaps.get(sid)
        if not s:
            raise ApiError("ResourceNotFoundException", "The snapshot '%s' does not exist." % sid,
                           reason="SNAPSHOT_NOT_FOUND")
        return s

    def status(self, s):
        if s["Status"] == "completing":
            if time.time() >= s.get("CompletedAt", 0):
                s["Status"] = "completed"
                self.save_snap(s)
            else:
                return "pending"
        return s["Status"]

    def all_blocks(self, sid):
        """index -> digest, parents first (the child's writes win)."""
        chain = []
        cur = sid
        while cur:
            s = self.snaps.get(cur)
            if not s:
                break
            chain.append(s)
            cur = s.get("ParentSnapshotId")
        out = {}
        for s in reversed(chain):
            out.update(s["blocks"])
        return out

    def token(self, sid, index, digest):
        mac = hmac.new(self.secret, ("%s/%d/%s" % (sid, index, digest)).encode(), hashlib.sha256).digest()
        return base64.b64encode(mac[:21] + bytes([index % 251])).decode()

    def snap_arn(self, sid):
        return "arn:aws:ec2:%s::snapshot/%s" % (self.region, sid)


class Faults:
    """faults.json (re-read when its mtime changes) or EBS_EC2_FAULTS."""

    def __init__(self, path, env_text):
        self.path = path
        self.lock = threading.Lock()
        self.mtime = None
        self.env_cfg = json.loads(env_text) if env_text else {}
        self.cfg = self.env_cfg
        self.counts = {}

    def current(self):
        with self.lock:
            try:
                m = os.stat(self.path).st_mtime_ns
            except FileNotFoundError:
                m = None
            if m != self.mtime:
                self.mtime = m
                self.counts = {}
                self.cfg = self.env_cfg
                if m is not None:
                    try:
                        with open(self.path) as f:
                            self.cfg = json.load(f)
                    except (OSError, ValueError):
                        self.cfg = {}
            return self.cfg

    def pick(self, action):
        cfg = self.current()
        with self.lock:
            for i, r in enumerate(cfg.get("rules", [])):
                if r.get("action", "*") not in ("*", action):
                    continue
                n = self.counts.get(i, 0) + 1
                self.counts[i] = n
                every, count, after = r.get("every"), r.get("count"), r.get("after", 0)
                fire = False
                if every:
                    fire = n % int(every) == 0
                    if count is not None:
                        fire = fire and n // int(every) <= int(count)
                elif count is not None:
                    fire = after < n <= after + int(count)
                elif n > after:
                    fire = True
                if fire:
                    return r.get("fault")
        return None


class Policy:
    def __init__(self, path):
        self.path = path

    def allowed(self, action, resource):
        try:
            with open(self.path) as f:
                doc = json.load(f)
        except FileNotFoundError:
            return True
        stmts = doc.get("Statement", [])
        if isinstance(stmts, dict):
            stmts = [stmts]

        def lst(v):
            return v if isinstance(v, list) else [v]

        def match(st):
            acts = lst(st.get("Action", []))
            if "NotAction" in st:
                if any(fnmatch.fnmatch(action.lower(), a.lower()) for a in lst(st["NotAction"])):
                    return False
            elif not any(fnmatch.fnmatch(action.lower(), a.lower()) for a in acts):
                return False
            res = lst(st.get("Resource", "*"))
            return any(r == "*" or fnmatch.fnmatchcase(resource, r) for r in res)

        allow = False
        for st in stmts:
            if not match(st):
                continue
            if st.get("Effect") == "Deny":
                return False
            if st.get("Effect") == "Allow":
                allow = True
        return allow


def ec2_params_list(params, prefix):
    """Values of prefix.1, prefix.2, ... in order."""
    out = []
    i = 1
    while "%s.%d" % (prefix, i) in params:
        out.append(params["%s.%d" % (prefix, i)])
        i += 1
    return out


def ec2_filters(params):
    out = []
    i = 1
    while "Filter.%d.Name" % i in params:
        out.append((params["Filter.%d.Name" % i], ec2_params_list(params, "Filter.%d.Value" % i)))
        i += 1
    return out


def ec2_tags(params, prefix):
    tags = []
    i = 1
    while "%s.%d.Key" % (prefix, i) in params:
        tags.append({"Key": params["%s.%d.Key" % (prefix, i)], "Value": params.get("%s.%d.Value" % (prefix, i), "")})
        i += 1
    return tags


def tag_filter_ok(tags, name, values):
    if name.startswith("tag:"):
        k = name[4:]
        return any(t["Key"] == k and any(fnmatch.fnmatchcase(t["Value"], v) for v in values) for t in tags)
    if name == "tag-key":
        return any(t["Key"] in values for t in tags)
    return None


def x(tag, value):
    if value is None:
        return ""
    if isinstance(value, bool):
        value = "true" if value else "false"
    return "<%s>%s</%s>" % (tag, xml_escape(str(value)), tag)


def check_ids(ids, known, code, fmt):
    """The NotFound error code (message fmt % id) for the first of ids not in known."""
    for i in ids:
        if i not in known:
            raise ApiError(code, fmt % i)


def xset(tag, items):
    """<tag>items</tag>, or <tag/> when there are none, as EC2 answers."""
    body = "".join(items)
    return "<%s>%s</%s>" % (tag, body, tag) if body else "<%s/>" % tag


def tagset(tags):
    return xset("tagSet", ("<item>%s%s</item>" % (x("key", t["Key"]), x("value", t["Value"])) for t in tags or []))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AmazonEBS-Local"
    sys_version = ""
    app = None  # set in main

    def log_message(self, fmt, *args):
        if self.app.verbose:
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    # ---- plumbing
    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def do_HEAD(self):
        self.dispatch()

    def read_body(self, limit=None):
        n = int(self.headers.get("Content-Length") or 0)
        if limit is not None:
            n = min(n, limit)
        data = b""
        while len(data) < n:
            chunk = self.rfile.read(n - len(data))
            if not chunk:
                break
            data += chunk
        return data

    def send(self, status, body=b"", ctype="application/json", headers=None, drop_half=False):
        self.send_response(status)
        rid = str(uuid.uuid4())
        self.send_header("x-amzn-RequestId", rid)
        self.send_header("Date", self.date_time_string())
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            if drop_half:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.hard_close()
                return
            self.wfile.write(body)

    def hard_close(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def dispatch(self):
        app = self.app
        u = urlsplit(self.path)
        if u.path == "/__health":
            return self.send(200, b"ok", "text/plain")
        if u.path == "/__stats":
            with app.lock:
                return self.send(200, json.dumps(app.stats).encode())
        if u.path == "/__reset-counters":
            self.read_body()
            with app.lock:
                app.stats = {}
            return self.send(200, b"{}")
        service = "ec2" if u.path == "/" else "ebs"
        self.service = service
        self.action = "Unknown"
        self.log_params = {}
        try:
            if service == "ebs":
                self.action, self.route = self.ebs_route(self.command, u.path)
            fault = None
            cfg = app.faults.current()
            if service == "ec2":
                # the action is in the body: read it first (drop reads half)
                body = self.read_body()
                params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
                self.action = params.get("Action", "Unknown")
                self.log_params = params
                fault = app.faults.pick(self.action)
                if fault == "drop":
                    return self.finish_drop()
            else:
                fault = app.faults.pick(self.action)
                if fault == "drop":
                    self.read_body(limit=int(self.headers.get("Content-Length") or 0) // 2)
                    return self.finish_drop()
                body = self.read_body()
            if fault == "exit":
                os._exit(3)
            lat = cfg.get("latency_ms")
            if lat:
                time.sleep(float(lat) / 1000.0)
            self.verify_sigv4(service, u, body)
            if fault in ("throttle", "throttle_request", "500", "503"):
                raise self.fault_error(service, fault)
            if service == "ec2":
                self.handle_ec2(params, drop=(fault == "drop_response"))
            else:
                self.handle_ebs(u, body, drop=(fault == "drop_response"))
        except ApiError as e:
            self.send_error_shape(service, e)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a server bug: answer 500 and keep serving
            import traceback
            traceback.print_exc()
            try:
                self.send_error_shape(service, ApiError("InternalServerException" if service == "ebs" else "InternalError",
                                                        "internal error: %s" % e, status=500))
            except OSError:
                pass

    def finish_drop(self):
        self.record(0, "connection dropped")
        self.hard_close()

    def fault_error(self, service, fault):
        if service == "ebs":
            if fault == "throttle":
                return ApiError("ThrottlingException", "Rate exceeded", status=400)
            if fault == "throttle_request":
                return ApiError("RequestThrottledException", "The request was throttled.", reason="ACCOUNT_THROTTLED")
            if fault == "500":
                return ApiError("InternalServerException", "An internal error has occurred.", status=500)
            return ApiError("ServiceUnavailableException", "Service unavailable, please retry.", status=503)
        if fault in ("throttle", "throttle_request"):
            return ApiError("RequestLimitExceeded", "Request limit exceeded.", status=503)
        if fault == "500":
            return ApiError("InternalError", "An internal error has occurred.", status=500)
        return ApiError("Unavailable", "The server is overloaded and can't handle the request.", status=503)

    def record(self, status, error=None):
        app = self.app
        entry = {"t": round(time.time(), 3), "service": self.service, "action": self.action, "status": status,
                 "error": error, "params": self.log_params}
        line = json.dumps(entry) + "\n"
        with app.lock:
            key = "%s %s" % (self.action, status)
            app.stats[key] = app.stats.get(key, 0) + 1
            with open(app.requests_log, "a") as f:
                f.write(line)

    def send_error_shape(self, service, e):
        if service == "ebs":
            status = e.status or EBS_STATUS.get(e.code, 400)
            body = {"Message": e.message, "message": e.message}
            if e.reason:
                body["Reason"] = e.reason
            self.record(status, e.code)
            self.send(status, json.dumps(body).encode(), "application/json", {"x-amzn-ErrorType": e.code})
        else:
            status = e.status or 400
            rid = str(uuid.uuid4())
            xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>%s</Code><Message>%s</Message>'
                   "</Error></Errors><RequestID>%s</RequestID></Response>" % (xml_escape(e.code), xml_escape(e.message), rid))
            self.record(status, e.code)
            self.send(status, xml.encode(), "text/xml;charset=UTF-8")

    # ---- SigV4 (botocore recomputes the signature)
    def verify_sigv4(self, service, u, body):
        app = self.app
        ebs = service == "ebs"
        auth = self.headers.get("Authorization")
        if not auth:
            raise ApiError("MissingAuthenticationTokenException" if ebs else "AuthFailure",
                           "Missing Authentication Token", status=403 if ebs else 401)
        m = re.match(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,\s*"
                     r"SignedHeaders=([^,]+),\s*Signature=([0-9a-f]{64})$", auth.strip())
        if not m:
            raise ApiError("IncompleteSignatureException" if ebs else "AuthFailure",
                           "Authorization header requires Credential, SignedHeaders and Signature.",
                           status=403 if ebs else 401)
        akid, date, region, svc, signed, sig = m.groups()
        if akid != app.access_key:
            raise ApiError("UnrecognizedClientException" if ebs else "AuthFailure",
                           "The security token included in the request is invalid.", status=403 if ebs else 401)
        if app.session_token is not None and self.headers.get("X-Amz-Security-Token") != app.session_token:
            raise ApiError("UnrecognizedClientException" if ebs else "AuthFailure",
                           "The security token included in the request is invalid.", status=403 if ebs else 401)
        if region != app.region or svc != service:
            raise ApiError("InvalidSignatureException" if ebs else "AuthFailure",
                           "Credential should be scoped to a valid region/service ('%s', '%s'), not ('%s', '%s')."
                           % (app.region, service, region, svc), status=403 if ebs else 401)
        amz_date = self.headers.get("X-Amz-Date", "")
        try:
            t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()
        except ValueError:
            raise ApiError("IncompleteSignatureException" if ebs else "AuthFailure", "X-Amz-Date is missing or invalid.",
                           status=403 if ebs else 401)
        if abs(time.time() - t) > 900:
            if ebs:
                raise ApiError("InvalidSignatureException", "Signature expired: %s is now earlier than the allowed window."
                               % amz_date, status=403)
            raise ApiError("RequestExpired", "Request has expired.", status=400)
        names = signed.split(";")
        if "host" not in names:
            raise ApiError("InvalidSignatureException" if ebs else "AuthFailure", "'Host' must be a signed header.",
                           status=403 if ebs else 401)
        hdrs = HTTPHeaders()
        for n in names:
            vals = self.headers.get_all(n)
            if vals is None:
                raise ApiError("InvalidSignatureException" if ebs else "AuthFailure",
                               "Signed header '%s' is missing." % n, status=403 if ebs else 401)
            for v in vals:
                hdrs[n] = v
        sent_hash = self.headers.get("X-Amz-Content-SHA256")
        if sent_hash and sent_hash != "UNSIGNED-PAYLOAD" and sent_hash != hashlib.sha256(body).hexdigest():
            raise ApiError("InvalidSignatureException" if ebs else "AuthFailure",
                           "The provided 'x-amz-content-sha256' header does not match what was computed.",
                           status=403 if ebs else 401)
        creds = Credentials(app.access_key, app.secret_key, app.session_token)
        signer = SigV4Auth(creds, service, app.region)
        req = AWSRequest(method=self.command, url="http://%s%s" % (self.headers.get("Host", "localhost"), self.path),
                         data=body)
        req.headers = hdrs
        req.context["timestamp"] = amz_date
        cr_parts = [self.command.upper(), signer._normalize_url_path(urlsplit(req.url).path),
                    signer.canonical_query_string(req), signer.canonical_headers(hdrs) + "\n",
                    signer.signed_headers(hdrs),
                    sent_hash if (sent_hash and "x-amz-content-sha256" in names) else
                    (hashlib.sha256(body).hexdigest() if body else EMPTY_SHA)]
        canonical = "\n".join(cr_parts)
        sts = signer.string_to_sign(req, canonical)
        want = signer.signature(sts, req)
        if not hmac.compare_digest(want, sig):
            if app.verbose:
                sys.stderr.write("signature mismatch; canonical request:\n%s\n" % canonical)
            if ebs:
                raise ApiError("InvalidSignatureException",
                               "The request signature we calculated does not match the signature you provided. "
                               "Check your AWS Secret Access Key and signing method.", status=403)
            raise ApiError("AuthFailure", "AWS was not able to validate the provided access credentials", status=401)

    def authorize(self, action, resource="*"):
        app = self.app
        svc = "ebs" if self.service == "ebs" else "ec2"
        if app.policy.allowed("%s:%s" % (svc, action), resource):
            return
        user = "arn:aws:iam::%s:user/diskvault-test" % app.owner
        if self.service == "ebs":
            raise ApiError("AccessDeniedException",
                           "User: %s is not authorized to perform: ebs:%s on resource: %s" % (user, action, resource),
                           reason="UNAUTHORIZED_ACCOUNT")
        raise ApiError("UnauthorizedOperation",
                       "You are not authorized to perform this operation. User: %s is not authorized to perform: "
                       "ec2:%s on resource: %s" % (user, action, resource), status=403)

    # ---- EBS direct
    def ebs_route(self, method, path):
        parts = [unquote(p) for p in path.split("/")[1:]]
        if method == "POST" and parts == ["snapshots"]:
            return "StartSnapshot", {}
        if method == "POST" and len(parts) == 3 and parts[:2] == ["snapshots", "completion"]:
            return "CompleteSnapshot", {"id": parts[2]}
        if len(parts) == 3 and parts[0] == "snapshots" and parts[2] == "blocks" and method == "GET":
            return "ListSnapshotBlocks", {"id": parts[1]}
        if len(parts) == 3 and parts[0] == "snapshots" and parts[2] == "changedblocks" and method == "GET":
            return "ListChangedBlocks", {"id": parts[1]}
        if len(parts) == 4 and parts[0] == "snapshots" and parts[2] == "blocks":
            if method == "PUT":
                return "PutSnapshotBlock", {"id": parts[1], "index": parts[3]}
            if method == "GET":
                return "GetSnapshotBlock", {"id": parts[1], "index": parts[3]}
        raise ApiError("UnknownOperationException", "Unknown operation %s %s" % (method, path), status=404)

    def handle_ebs(self, u, body, drop=False):
        q = dict(parse_qsl(u.query, keep_blank_values=True))
        amz = {k: v for k, v in self.headers.items() if k.lower().startswith("x-amz-") and k.lower() not in
               ("x-amz-date", "x-amz-security-token", "x-amz-content-sha256")}
        self.log_params = dict(self.route, **q, **amz)
        fn = getattr(self, "ebs_" + self.action)
        status, payload, headers = fn(self.route, q, body)
        self.record(status)
        if isinstance(payload, (bytes, bytearray)):
            self.send(status, bytes(payload), "application/octet-stream", headers, drop_half=drop)
        else:
            self.send(status, json.dumps(payload).encode(), "application/json", headers, drop_half=drop)

    def int_param(self, v, name, lo=None, hi=None):
        try:
            n = int(v)
        except (TypeError, ValueError):
            raise ApiError("ValidationException", "%s must be an integer" % name, reason="INVALID_PARAMETER_VALUE")
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            raise ApiError("ValidationException", "%s %d is out of range" % (name, n), reason="INVALID_PARAMETER_VALUE")
        return n

    def ebs_StartSnapshot(self, route, q, body):
        st = self.app.state
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            raise ApiError("SerializationException", "Malformed JSON body", status=400)
        self.log_params = req
        self.authorize("StartSnapshot", "arn:aws:ec2:%s::snapshot/*" % st.region)
        size = req.get("VolumeSize")
        if not isinstance(size, int) or isinstance(size, bool) or size < 1 or size > 65536:
            raise ApiError("ValidationException", "VolumeSize must be between 1 and 65536 GiB",
                           reason="INVALID_VOLUME_SIZE")
        desc = req.get("Description")
        if desc is not None and len(desc) > 255:
            raise ApiError("ValidationException", "Description too long", reason="INVALID_PARAMETER_VALUE")
        timeout = req.get("Timeout", 60)
        if not isinstance(timeout, int) or timeout < 10 or timeout > 4320:
            raise ApiError("ValidationException", "Timeout must be between 10 and 4320 minutes",
                           reason="INVALID_PARAMETER_VALUE")
        tags = req.get("Tags") or []
        for t in tags:
            if not isinstance(t, dict) or not t.get("Key") or str(t["Key"]).lower().startswith("aws:"):
                raise ApiError("ValidationException", "Invalid tag", reason="INVALID_TAG")
        if req.get("KmsKeyArn") and not req.get("Encrypted"):
            raise ApiError("ValidationException", "KmsKeyArn requires Encrypted", reason="INVALID_PARAMETER_VALUE")
        token = req.get("ClientToken")
        with st.lock:
            if token:
                for s in st.snaps.values():
                    if s.get("ClientToken") == token:
                        if s["VolumeSize"] != size or s.get("ParentSnapshotId") != req.get("ParentSnapshotId"):
                            raise ApiError("ConflictException", "The ClientToken was used with different parameters.")
                        return 201, self.snap_json(s), {}
            parent = req.get("ParentSnapshotId")
            if parent:
                p = st.snapshot(parent)
                if st.status(p) != "completed":
                    raise ApiError("ValidationException", "The parent snapshot %s is not completed." % parent,
                                   reason="INVALID_SNAPSHOT_ID")
                if p["VolumeSize"] > size:
                    raise ApiError("ValidationException", "VolumeSize is smaller than the parent's",
                                   reason="INVALID_VOLUME_SIZE")
            sid = "snap-" + os.urandom(9).hex()[:17]
            s = {"SnapshotId": sid, "OwnerId": self.app.owner, "Status": "pending", "StartTime": time.time(),
                 "VolumeSize": size, "BlockSize": BLOCK, "Description": desc or "", "Tags": tags,
                 "ParentSnapshotId": parent, "ClientToken": token, "Timeout": timeout,
                 "Encrypted": bool(req.get("Encrypted")), "KmsKeyArn": req.get("KmsKeyArn"), "blocks": {}}
            if s["Encrypted"] and not s["KmsKeyArn"]:
                s["KmsKeyArn"] = "arn:aws:kms:%s:%s:key/aws-ebs-default" % (st.region, self.app.owner)
            st.snaps[sid] = s
            st.save_snap(s)
            st.puts_since_start[sid] = 0
        return 201, self.snap_json(s), {}

    def snap_json(self, s):
        out = {"SnapshotId": s["SnapshotId"], "OwnerId": s["OwnerId"], "Status": self.app.state.status(s),
               "StartTime": s["StartTime"], "VolumeSize": s["VolumeSize"], "BlockSize": BLOCK}
        for k in ("Description", "Tags", "ParentSnapshotId", "KmsKeyArn"):
            if s.get(k):
                out[k] = s[k]
        return out

    def ebs_PutSnapshotBlock(self, route, q, body):
        st = self.app.state
        sid = route["id"]
        self.authorize("PutSnapshotBlock", st.snap_arn(sid))
        cfg = self.app.faults.current()
        with st.lock:
            if sid in st.puts_since_start:
                st.puts_since_start[sid] += 1
                if st.puts_since_start[sid] <= int(cfg.get("not_exist_yet_puts", 0)):
                    raise ApiError("ResourceNotFoundException", "The snapshot '%s' does not exist." % sid,
                                   reason="SNAPSHOT_NOT_FOUND")
            s = st.snapshot(sid)
            if s["Status"] != "pending":
                raise ApiError("ValidationException", "The snapshot %s is not in the pending state." % sid,
                               reason="INVALID_SNAPSHOT_ID")
            if time.time() > s["StartTime"] + s["Timeout"] * 60:
                s["Status"] = "error"
                st.save_snap(s)
                raise ApiError("ValidationException", "The snapshot %s timed out." % sid, reason="INVALID_SNAPSHOT_ID")
        index = self.int_param(route["index"], "BlockIndex", 0)
        if index >= s["VolumeSize"] * (1 << 30) // BLOCK:
            raise ApiError("ValidationException", "BlockIndex %d is beyond the volume size" % index,
                           reason="INVALID_BLOCK")
        dl = self.headers.get("x-amz-Data-Length")
        if dl is None:
            raise ApiError("ValidationException", "x-amz-Data-Length is required", reason="INVALID_PARAMETER_VALUE")
        dl = self.int_param(dl, "DataLength")
        if dl != BLOCK or len(body) != dl:
            raise ApiError("ValidationException", "The data length (%d, body %d bytes) must be %d."
                           % (dl, len(body), BLOCK), reason="INVALID_BLOCK")
        alg = self.headers.get("x-amz-Checksum-Algorithm")
        ck = self.headers.get("x-amz-Checksum")
        if alg != "SHA256" or not ck:
            raise ApiError("ValidationException", "x-amz-Checksum and x-amz-Checksum-Algorithm SHA256 are required",
                           reason="INVALID_PARAMETER_VALUE")
        prog = self.headers.get("x-amz-Progress")
        if prog is not None:
            self.int_param(prog, "Progress", 0, 100)
        actual = b64sha(body)
        if ck != actual:
            raise ApiError("ValidationException", "The checksum of the block data does not match x-amz-Checksum.",
                           reason="INVALID_BLOCK")
        h = st.store_block(body)
        with st.lock:
            if s["Status"] != "pending":
                raise ApiError("ValidationException", "The snapshot %s is not in the pending state." % sid,
                               reason="INVALID_SNAPSHOT_ID")
            s["blocks"][index] = h
            st.append_block(sid, index, h)
        return 201, {}, {"x-amz-Checksum": actual, "x-amz-Checksum-Algorithm": "SHA256"}

    def ebs_CompleteSnapshot(self, route, q, body):
        st = self.app.state
        sid = route["id"]
        self.authorize("CompleteSnapshot", st.snap_arn(sid))
        with st.lock:
            s = st.snapshot(sid)
            cnt = self.headers.get("x-amz-ChangedBlocksCount")
            if cnt is None:
                raise ApiError("ValidationException", "x-amz-ChangedBlocksCount is required",
                               reason="INVALID_PARAMETER_VALUE")
            cnt = self.int_param(cnt, "ChangedBlocksCount", 0)
            if s["Status"] in ("completing", "completed"):
                return 202, {"Status": st.status(s)}, {}
            if s["Status"] != "pending":
                raise ApiError("ValidationException", "The snapshot %s is in the %s state." % (sid, s["Status"]),
                               reason="INVALID_SNAPSHOT_ID")
            if cnt != len(s["blocks"]):
                raise ApiError("ValidationException", "ChangedBlocksCount %d does not match the %d blocks written."
                               % (cnt, len(s["blocks"])), reason="INVALID_PARAMETER_VALUE")
            ck = self.headers.get("x-amz-Checksum")
            if ck is not None:
                alg = self.headers.get("x-amz-Checksum-Algorithm")
                meth = self.headers.get("x-amz-Checksum-Aggregation-Method")
                if alg != "SHA256" or meth != "LINEAR":
                    raise ApiError("ValidationException", "Checksum needs algorithm SHA256 and aggregation LINEAR",
                                   reason="INVALID_PARAMETER_VALUE")
                agg = hashlib.sha256(b"".join(bytes.fromhex(s["blocks"][i]) for i in sorted(s["blocks"]))).digest()
                if base64.b64encode(agg).decode() != ck:
                    raise ApiError("ValidationException", "The aggregated checksum does not match the blocks written.",
                                   reason="INVALID_PARAMETER_VALUE")
            s["Status"] = "completing"
            s["CompletedAt"] = time.time() + float(self.app.faults.current().get("completion_delay", 1.0))
            s["ChangedBlocksCount"] = cnt
            st.save_snap(s)
            st.puts_since_start.pop(sid, None)
        return 202, {"Status": "pending"}, {}

    def paging(self, q, items):
        maxr = self.int_param(q.get("maxResults", 10000), "MaxResults", 100, 10000)
        start = self.int_param(q.get("startingBlockIndex", 0), "StartingBlockIndex", 0)
        tok = q.get("pageToken")
        if tok:
            try:
                start = int(base64.b64decode(tok).decode().split(":")[1])
            except (ValueError, IndexError):
                raise ApiError("ValidationException", "Invalid page token", reason="INVALID_PAGE_TOKEN")
        sel = [i for i in items if i[0] >= start]
        page, rest = sel[:maxr], sel[maxr:]
        nxt = base64.b64encode(("page:%d" % rest[0][0]).encode()).decode() if rest else None
        return page, nxt

    def ebs_ListSnapshotBlocks(self, route, q, body):
        st = self.app.state
        sid = route["id"]
        self.authorize("ListSnapshotBlocks", st.snap_arn(sid))
        with st.lock:
            s = st.snapshot(sid)
            if st.status(s) != "completed":
                raise ApiError("ValidationException", "The snapshot %s is not completed." % sid,
                               reason="INVALID_SNAPSHOT_ID")
            blocks = st.all_blocks(sid)
        items = sorted(blocks.items())
        page, nxt = self.paging(q, items)
        out = {"Blocks": [{"BlockIndex": i, "BlockToken": st.token(sid, i, d)} for i, d in page],
               "ExpiryTime": time.time() + 3600, "VolumeSize": s["VolumeSize"], "BlockSize": BLOCK}
        if nxt:
            out["NextToken"] = nxt
        return 200, out, {}

    def ebs_ListChangedBlocks(self, route, q, body):
        st = self.app.state
        sid = route["id"]
        self.authorize("ListChangedBlocks", st.snap_arn(sid))
        first = q.get("firstSnapshotId")
        with st.lock:
            s = st.snapshot(sid)
            if st.status(s) != "completed":
                raise ApiError("ValidationException", "The snapshot %s is not completed." % sid,
                               reason="INVALID_SNAPSHOT_ID")
            b2 = st.all_blocks(sid)
            b1 = {}
            if first:
                f = st.snapshot(first)
                if st.status(f) != "completed":
                    raise ApiError("ValidationException", "The snapshot %s is not completed." % first,
                                   reason="INVALID_SNAPSHOT_ID")
                b1 = st.all_blocks(first)
        idx = sorted(set(b1) | set(b2))
        items = [(i, None) for i in idx if b1.get(i) != b2.get(i)]
        page, nxt = self.paging(q, items)
        ch = []
        for i, _ in page:
            e = {"BlockIndex": i}
            if i in b1:
                e["FirstBlockToken"] = st.token(first, i, b1[i])
            if i in b2:
                e["SecondBlockToken"] = st.token(sid, i, b2[i])
            ch.append(e)
        out = {"ChangedBlocks": ch, "ExpiryTime": time.time() + 3600, "VolumeSize": s["VolumeSize"], "BlockSize": BLOCK}
        if nxt:
            out["NextToken"] = nxt
        return 200, out, {}

    def ebs_GetSnapshotBlock(self, route, q, body):
        st = self.app.state
        sid = route["id"]
        self.authorize("GetSnapshotBlock", st.snap_arn(sid))
        index = self.int_param(route["index"], "BlockIndex", 0)
        tok = q.get("blockToken")
        if not tok:
            raise ApiError("ValidationException", "blockToken is required", reason="INVALID_BLOCK_TOKEN")
        with st.lock:
            s = st.snapshot(sid)
            if st.status(s) != "completed":
                raise ApiError("ValidationException", "The snapshot %s is not completed." % sid,
                               reason="INVALID_SNAPSHOT_ID")
            d = st.all_blocks(sid).get(index)
        if d is None or not hmac.compare_digest(tok, st.token(sid, index, d)):
            raise ApiError("ValidationException", "The block token is not valid for this block.",
                           reason="INVALID_BLOCK_TOKEN")
        data = st.read_block(d)
        return 200, data, {"x-amz-Data-Length": str(len(data)), "x-amz-Checksum": b64sha(data),
                           "x-amz-Checksum-Algorithm": "SHA256"}

    # ---- EC2
    def handle_ec2(self, params, drop=False):
        if params.get("Version") != "2016-11-15":
            raise ApiError("InvalidParameterValue", "Version must be 2016-11-15", status=400)
        fn = getattr(self, "ec2_" + self.action, None)
        if not fn:
            raise ApiError("InvalidAction", "The action %s is not valid for this web service." % self.action)
        with self.app.state.lock:
            inner = fn(params)
        rid = str(uuid.uuid4())
        xml = '<?xml version="1.0" encoding="UTF-8"?>\n<%sResponse xmlns="%s"><requestId>%s</requestId>%s</%sResponse>' % (
            self.action, EC2_NS, rid, inner, self.action)
        self.record(200)
        self.send(200, xml.encode(), "text/xml;charset=UTF-8", drop_half=drop)

    def dry_run(self, params, action, resource="*"):
        self.authorize(action, resource)
        if params.get("DryRun", "").lower() == "true":
            raise ApiError("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", status=412)

    def ec2_snapshot_xml(self, s):
        st = self.app.state
        status = st.status(s)
        total = max(1, s.get("ChangedBlocksCount", len(s["blocks"])))
        prog = "100%" if status == "completed" else "%d%%" % min(99, 100 * len(s["blocks"]) // total)
        return ("<item>%s<volumeId>vol-ffffffff</volumeId>%s%s%s%s%s%s%s%s%s<storageTier>standard</storageTier></item>" % (
            x("snapshotId", s["SnapshotId"]), x("status", status), x("startTime", now_iso(s["StartTime"])),
            x("progress", prog), x("ownerId", s["OwnerId"]), x("volumeSize", s["VolumeSize"]),
            x("description", s.get("Description", "")), x("encrypted", bool(s.get("Encrypted"))),
            x("kmsKeyId", s.get("KmsKeyArn")), tagset(s.get("Tags"))))

    def ec2_DescribeSnapshots(self, params):
        st = self.app.state
        self.dry_run(params, "DescribeSnapshots")
        ids = ec2_params_list(params, "SnapshotId")
        owners = ec2_params_list(params, "Owner")
        check_ids(ids, st.snaps, "InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.")
        out = []
        for sid in sorted(st.snaps, key=lambda k: st.snaps[k]["StartTime"]):
            s = st.snaps[sid]
            if ids and sid not in ids:
                continue
            if owners and not any(o in ("self", s["OwnerId"]) for o in owners):
                continue
            if not self.filters_ok(params, s.get("Tags", []), {
                    "snapshot-id": sid, "status": st.status(s), "description": s.get("Description", ""),
                    "owner-id": s["OwnerId"], "volume-size": str(s["VolumeSize"])}):
                continue
            out.append(self.ec2_snapshot_xml(s))
        return xset("snapshotSet", out)

    def filters_ok(self, params, tags, fields):
        for name, values in ec2_filters(params):
            t = tag_filter_ok(tags, name, values)
            if t is not None:
                if not t:
                    return False
                continue
            if name not in fields:
                raise ApiError("InvalidParameterValue", "The filter '%s' is invalid" % name)
            if not any(fnmatch.fnmatchcase(fields[name], v) for v in values):
                return False
        return True

    def ec2_DeleteSnapshot(self, params):
        st = self.app.state
        sid = params.get("SnapshotId")
        if not sid:
            raise ApiError("MissingParameter", "The request must contain the parameter SnapshotId")
        self.dry_run(params, "DeleteSnapshot", st.snap_arn(sid))
        if sid not in st.snaps:
            raise ApiError("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist." % sid)
        for img in st.ec2["images"].values():
            if img["State"] != "deregistered" and any(m.get("SnapshotId") == sid for m in img["Mappings"]):
                raise ApiError("InvalidSnapshot.InUse",
                               "The snapshot %s is currently in use by %s" % (sid, img["ImageId"]))
        # children inherit blocks through the chain: fold them in first
        for other in st.snaps.values():
            if other.get("ParentSnapshotId") == sid:
                merged = st.all_blocks(sid)
                merged.update(other["blocks"])
                other["blocks"] = merged
                other["ParentSnapshotId"] = None
                st.save_snap(other)
                with open(os.path.join(st.root, "snapshots", other["SnapshotId"], "blocks.log"), "w") as f:
                    for i, d in sorted(merged.items()):
                        f.write("%d %s\n" % (i, d))
        del st.snaps[sid]
        d = os.path.join(st.root, "snapshots", sid)
        for n in os.listdir(d):
            os.unlink(os.path.join(d, n))
        os.rmdir(d)
        return "<return>true</return>"

    def new_id(self, prefix):
        return "%s-%s" % (prefix, os.urandom(9).hex()[:17])

    def ec2_RegisterImage(self, params):
        st = self.app.state
        self.dry_run(params, "RegisterImage")
        name = params.get("Name")
        if not name:
            raise ApiError("MissingParameter", "The request must contain the parameter name")
        if any(i["Name"] == name and i["State"] != "deregistered" for i in st.ec2["images"].values()):
            raise ApiError("InvalidAMIName.Duplicate", "AMI name %s is already in use by AMI" % name)
        maps = []
        i = 1
        while "BlockDeviceMapping.%d.DeviceName" % i in params:
            p = "BlockDeviceMapping.%d." % i
            m = {"DeviceName": params[p + "DeviceName"]}
            for k in ("SnapshotId", "VolumeSize", "VolumeType", "DeleteOnTermination", "Iops", "Throughput",
                      "Encrypted", "KmsKeyId"):
                if p + "Ebs." + k in params:
                    m[k] = params[p + "Ebs." + k]
            if m.get("SnapshotId"):
                s = st.snaps.get(m["SnapshotId"])
                if not s:
                    raise ApiError("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist." % m["SnapshotId"])
                if st.status(s) != "completed":
                    raise ApiError("IncorrectState", "Snapshot %s is not in the completed state" % m["SnapshotId"])
                m.setdefault("VolumeSize", str(s["VolumeSize"]))
                if int(m["VolumeSize"]) < s["VolumeSize"]:
                    raise ApiError("InvalidBlockDeviceMapping",
                                   "Volume of size %s is smaller than snapshot %s, expect size >= %d"
                                   % (m["VolumeSize"], m["SnapshotId"], s["VolumeSize"]))
            maps.append(m)
            i += 1
        root = params.get("RootDeviceName")
        if root and not any(m["DeviceName"] == root for m in maps):
            raise ApiError("InvalidBlockDeviceMapping", "The root device name %s is not mapped" % root)
        if not params.get("ImageLocation") and not maps:
            raise ApiError("InvalidParameterCombination", "Either ImageLocation or a block device mapping is required")
        arch = params.get("Architecture", "x86_64")
        if arch not in ("i386", "x86_64", "arm64", "x86_64_mac", "arm64_mac"):
            raise ApiError("InvalidParameterValue", "Value (%s) for parameter architecture is invalid." % arch)
        boot = params.get("BootMode")
        if boot and boot not in ("legacy-bios", "uefi", "uefi-preferred"):
            raise ApiError("InvalidParameterValue", "Value (%s) for parameter bootMode is invalid." % boot)
        iid = self.new_id("ami")
        st.ec2["images"][iid] = {
            "ImageId": iid, "Name": name, "Description": params.get("Description"), "Architecture": arch,
            "RootDeviceName": root, "VirtualizationType": params.get("VirtualizationType", "paravirtual"),
            "EnaSupport": params.get("EnaSupport"), "BootMode": boot, "ImdsSupport": params.get("ImdsSupport"),
            "SriovNetSupport": params.get("SriovNetSupport"), "TpmSupport": params.get("TpmSupport"),
            "Mappings": maps, "State": "available", "CreationDate": now_iso(), "Tags": [],
            "Params": params}
        for k, spec in ((k, v) for k, v in params.items() if k.startswith("TagSpecification.") and k.endswith(".ResourceType")):
            if spec == "image":
                st.ec2["images"][iid]["Tags"] += ec2_tags(params, k[: -len("ResourceType")] + "Tag")
        st.save_ec2()
        return x("imageId", iid)

    def ec2_image_xml(self, img):
        bdm = ("<item>%s<ebs>%s%s%s%s%s</ebs></item>" % (
            x("deviceName", m["DeviceName"]), x("snapshotId", m.get("SnapshotId")), x("volumeSize", m.get("VolumeSize")),
            x("deleteOnTermination", m.get("DeleteOnTermination", "true")), x("volumeType", m.get("VolumeType", "gp2")),
            x("encrypted", m.get("Encrypted", "false"))) for m in img["Mappings"])
        return "<item>%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s</item>" % (
            x("imageId", img["ImageId"]), x("imageLocation", "%s/%s" % (self.app.owner, img["Name"])),
            x("imageState", img["State"]), x("imageOwnerId", self.app.owner), x("creationDate", img["CreationDate"]),
            x("isPublic", False), x("architecture", img["Architecture"]), x("imageType", "machine"),
            x("name", img["Name"]), x("description", img.get("Description")), x("rootDeviceType", "ebs"),
            x("rootDeviceName", img.get("RootDeviceName")),
            xset("blockDeviceMapping", bdm), x("virtualizationType", img["VirtualizationType"]), tagset(img.get("Tags")),
            x("enaSupport", (img.get("EnaSupport") or "").lower() == "true"),
            x("bootMode", img.get("BootMode")))

    def ec2_DescribeImages(self, params):
        st = self.app.state
        self.dry_run(params, "DescribeImages")
        ids = ec2_params_list(params, "ImageId")
        check_ids(ids, {k for k, v in st.ec2["images"].items() if v["State"] != "deregistered"},
                  "InvalidAMIID.NotFound", "The image id '[%s]' does not exist")
        out = []
        for iid, img in st.ec2["images"].items():
            if img["State"] == "deregistered" or (ids and iid not in ids):
                continue
            snaps = [m.get("SnapshotId") or "" for m in img["Mappings"]]
            fields = {"image-id": iid, "name": img["Name"], "state": img["State"], "architecture": img["Architecture"],
                      "block-device-mapping.snapshot-id": snaps[0] if snaps else ""}
            if not self.filters_ok(params, img.get("Tags", []), fields):
                continue
            out.append(self.ec2_image_xml(img))
        return xset("imagesSet", out)

    def ec2_DeregisterImage(self, params):
        st = self.app.state
        iid = params.get("ImageId")
        self.dry_run(params, "DeregisterImage", "arn:aws:ec2:%s::image/%s" % (st.region, iid))
        img = st.ec2["images"].get(iid)
        if not img or img["State"] == "deregistered":
            raise ApiError("InvalidAMIID.NotFound", "The image id '[%s]' does not exist" % iid)
        img["State"] = "deregistered"
        st.save_ec2()
        return "<return>true</return>"

    def catalog(self):
        return self.app.catalog

    def ec2_RunInstances(self, params):
        st = self.app.state
        self.dry_run(params, "RunInstances")
        image = params.get("ImageId")
        itype = params.get("InstanceType", "m1.small")
        for k in ("MinCount", "MaxCount"):
            if k not in params:
                raise ApiError("MissingParameter", "The request must contain the parameter %s" % k)
        mn, mx = int(params["MinCount"]), int(params["MaxCount"])
        if mn < 1 or mx < mn:
            raise ApiError("InvalidParameterValue", "MinCount and MaxCount are invalid")
        img = st.ec2["images"].get(image or "")
        if not img or img["State"] != "available":
            raise ApiError("InvalidAMIID.NotFound", "The image id '[%s]' does not exist" % image)
        types = {t["type"]: t for t in self.catalog()}
        if itype not in types:
            raise ApiError("InvalidParameterValue", "Invalid value '%s' for InstanceType." % itype)
        if types[itype]["arch"] != img["Architecture"]:
            raise ApiError("InvalidParameterValue",
                           "The architecture '%s' of the specified instance type does not match the architecture "
                           "'%s' of the specified AMI." % (types[itype]["arch"], img["Architecture"]))
        tok = params.get("ClientToken")
        if tok and tok in st.ec2["tokens"]:
            res = st.ec2["tokens"][tok]
            insts = [st.ec2["instances"][i] for i in res["Instances"]]
            return self.reservation_inner(res["ReservationId"], insts)
        tags_by = {}
        i = 1
        while "TagSpecification.%d.ResourceType" % i in params:
            tags_by.setdefault(params["TagSpecification.%d.ResourceType" % i], []).extend(
                ec2_tags(params, "TagSpecification.%d.Tag" % i))
            i += 1
        if "image" in tags_by:
            raise ApiError("InvalidParameterValue", "'image' is not a valid taggable resource type for this operation.")
        rid = self.new_id("r")
        insts = []
        for n in range(mx):
            iid = self.new_id("i")
            k = len(st.ec2["instances"]) + 1
            inst = {"InstanceId": iid, "ImageId": image, "InstanceType": itype, "LaunchTime": time.time(),
                    "State": "pending", "ReservationId": rid, "KeyName": params.get("KeyName"),
                    "SubnetId": params.get("SubnetId") or "subnet-0default0000000000",
                    "SecurityGroups": ec2_params_list(params, "SecurityGroupId"),
                    "PrivateIp": "10.0.%d.%d" % (k // 250, k % 250 + 4), "PublicIp": "203.0.113.%d" % (k % 250 + 1),
                    "Architecture": img["Architecture"], "RootDeviceName": img.get("RootDeviceName"),
                    "BootMode": img.get("BootMode") or "legacy-bios", "Tags": tags_by.get("instance", []),
                    "VolumeTags": tags_by.get("volume", []), "HttpTokens": params.get("MetadataOptions.HttpTokens", "optional"),
                    "HttpEndpoint": params.get("MetadataOptions.HttpEndpoint", "enabled"), "AmiLaunchIndex": n,
                    "Params": params}
            st.ec2["instances"][iid] = inst
            insts.append(inst)
        if tok:
            st.ec2["tokens"][tok] = {"ReservationId": rid, "Instances": [i["InstanceId"] for i in insts]}
        st.save_ec2()
        return self.reservation_inner(rid, insts)

    def inst_state(self, inst):
        cfg = self.app.faults.current()
        d = float(cfg.get("instance_start_delay", 1.0))
        if inst["State"] == "pending" and time.time() >= inst["LaunchTime"] + d:
            inst["State"] = "running"
            self.app.state.save_ec2()
        if inst["State"] == "shutting-down" and time.time() >= inst.get("TerminatedAt", 0) + d:
            inst["State"] = "terminated"
            self.app.state.save_ec2()
        return inst["State"]

    STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}

    def instance_xml(self, inst):
        state = self.inst_state(inst)
        running = state in ("running", "pending")
        groups = ("<item>%s%s</item>" % (x("groupId", g), x("groupName", g)) for g in inst["SecurityGroups"])
        img = self.app.state.ec2["images"].get(inst["ImageId"], {})
        bdm = ("<item>%s<ebs>%s%s%s%s</ebs></item>" % (
            x("deviceName", m["DeviceName"]), x("volumeId", "vol-" + inst["InstanceId"][2:]), x("status", "attached"),
            x("attachTime", now_iso(inst["LaunchTime"])), x("deleteOnTermination", m.get("DeleteOnTermination", "true")))
            for m in (img.get("Mappings", []) if running else []))
        return "<item>%s%s<instanceState>%s%s</instanceState>%s%s%s%s%s%s<placement>%s</placement>%s%s%s%s%s%s%s%s%s%s%s%s<metadataOptions>%s%s%s</metadataOptions></item>" % (
            x("instanceId", inst["InstanceId"]), x("imageId", inst["ImageId"]), x("code", self.STATE_CODES[state]),
            x("name", state), x("privateDnsName", "ip-%s.ec2.internal" % inst["PrivateIp"].replace(".", "-") if running else ""),
            x("dnsName", ""), x("keyName", inst.get("KeyName")), x("amiLaunchIndex", inst["AmiLaunchIndex"]),
            x("instanceType", inst["InstanceType"]), x("launchTime", now_iso(inst["LaunchTime"])),
            x("availabilityZone", self.app.region + "a"), x("subnetId", inst["SubnetId"] if running else None),
            x("vpcId", "vpc-0default0000000000" if running else None),
            x("privateIpAddress", inst["PrivateIp"] if running else None),
            x("ipAddress", inst["PublicIp"] if state == "running" else None),
            xset("groupSet", groups), x("architecture", inst["Architecture"]),
            x("rootDeviceType", "ebs"), x("rootDeviceName", inst.get("RootDeviceName")), xset("blockDeviceMapping", bdm),
            x("virtualizationType", "hvm"), tagset(inst.get("Tags")), x("bootMode", inst.get("BootMode")),
            x("state", "applied"), x("httpTokens", inst["HttpTokens"]), x("httpEndpoint", inst["HttpEndpoint"]))

    def reservation_inner(self, rid, insts):
        return "%s%s<groupSet/><instancesSet>%s</instancesSet>" % (
            x("reservationId", rid), x("ownerId", self.app.owner), "".join(self.instance_xml(i) for i in insts))

    def ec2_DescribeInstances(self, params):
        st = self.app.state
        self.dry_run(params, "DescribeInstances")
        ids = ec2_params_list(params, "InstanceId")
        check_ids(ids, st.ec2["instances"], "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist")
        by_res = {}
        for iid, inst in st.ec2["instances"].items():
            if ids and iid not in ids:
                continue
            fields = {"instance-id": iid, "instance-state-name": self.inst_state(inst), "image-id": inst["ImageId"],
                      "instance-type": inst["InstanceType"], "reservation-id": inst["ReservationId"]}
            if not self.filters_ok(params, inst.get("Tags", []), fields):
                continue
            by_res.setdefault(inst["ReservationId"], []).append(inst)
        return xset("reservationSet", ("<item>%s</item>" % self.reservation_inner(r, v) for r, v in by_res.items()))

    def ec2_TerminateInstances(self, params):
        st = self.app.state
        ids = ec2_params_list(params, "InstanceId")
        if not ids:
            raise ApiError("MissingParameter", "The request must contain the parameter InstanceId")
        self.dry_run(params, "TerminateInstances", "arn:aws:ec2:%s:%s:instance/%s" % (st.region, self.app.owner, ids[0]))
        out = []
        check_ids(ids, st.ec2["instances"], "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist")
        for i in ids:
            inst = st.ec2["instances"][i]
            prev = self.inst_state(inst)
            if prev != "terminated":
                inst["State"] = "shutting-down"
                inst["TerminatedAt"] = time.time()
            cur = inst["State"]
            out.append("<item>%s<currentState>%s%s</currentState><previousState>%s%s</previousState></item>" % (
                x("instanceId", i), x("code", self.STATE_CODES[cur]), x("name", cur), x("code", self.STATE_CODES[prev]),
                x("name", prev)))
        st.save_ec2()
        return "<instancesSet>%s</instancesSet>" % "".join(out)

    def ec2_CreateTags(self, params):
        st = self.app.state
        ids = ec2_params_list(params, "ResourceId")
        tags = ec2_tags(params, "Tag")
        if not ids or not tags:
            raise ApiError("MissingParameter", "The request must contain the parameters ResourceId and Tag")
        self.dry_run(params, "CreateTags")
        targets = []
        for r in ids:
            if r.startswith("snap-") and r in st.snaps:
                targets.append(("snap", st.snaps[r]))
            elif r.startswith("ami-") and r in st.ec2["images"]:
                targets.append(("ec2", st.ec2["images"][r]))
            elif r.startswith("i-") and r in st.ec2["instances"]:
                targets.append(("ec2", st.ec2["instances"][r]))
            else:
                code = {"snap": "InvalidSnapshot.NotFound", "ami-": "InvalidAMIID.NotFound",
                        "i-": "InvalidInstanceID.NotFound"}
                c = next((v for k, v in code.items() if r.startswith(k)), "InvalidID")
                raise ApiError(c, "The ID '%s' does not exist" % r)
        for kind, obj in targets:
            cur = obj.setdefault("Tags", [])
            for t in tags:
                cur[:] = [c for c in cur if c["Key"] != t["Key"]] + [t]
            if kind == "snap":
                st.save_snap(obj)
        st.save_ec2()
        return "<return>true</return>"

    def ec2_DescribeInstanceTypes(self, params):
        self.dry_run(params, "DescribeInstanceTypes")
        want = ec2_params_list(params, "InstanceType")
        cat = self.catalog()
        check_ids(want, {t["type"] for t in cat}, "InvalidInstanceType",
                  "The following supplied instance types do not exist: [%s]")
        rows = []
        for t in cat:
            if want and t["type"] not in want:
                continue
            ok = True
            for name, values in ec2_filters(params):
                field = {"processor-info.supported-architecture": t["arch"], "instance-type": t["type"],
                         "current-generation": "true", "burstable-performance-supported": t["burstable"],
                         "vcpu-info.default-vcpus": t["vcpus"]}.get(name)
                if field is None:
                    raise ApiError("InvalidParameterValue", "The filter '%s' is invalid" % name)
                if not any(fnmatch.fnmatchcase(field, v) for v in values):
                    ok = False
            if ok:
                rows.append(t)
        maxr = int(params.get("MaxResults", 100))
        if maxr < 5 or maxr > 100:
            raise ApiError("InvalidParameterValue", "MaxResults must be between 5 and 100")
        start = 0
        if params.get("NextToken"):
            try:
                start = int(base64.b64decode(params["NextToken"]).decode())
            except ValueError:
                raise ApiError("InvalidParameterValue", "Invalid NextToken")
        page = rows[start:start + maxr]
        nxt = base64.b64encode(str(start + maxr).encode()).decode() if start + maxr < len(rows) else None
        items = []
        for t in page:
            mem = int(float(t["memory_gib"]) * 1024)
            boots = "".join(x("item", b) for b in t["boot_modes"].split(";"))
            burst = t["burstable"] == "true"
            items.append(
                "<item>%s<currentGeneration>true</currentGeneration><freeTierEligible>false</freeTierEligible>"
                "<supportedUsageClasses><item>on-demand</item><item>spot</item></supportedUsageClasses>"
                "<supportedRootDeviceTypes><item>ebs</item></supportedRootDeviceTypes>"
                "<supportedVirtualizationTypes><item>hvm</item></supportedVirtualizationTypes>"
                "<bareMetal>false</bareMetal><hypervisor>nitro</hypervisor>"
                "<processorInfo><supportedArchitectures>%s</supportedArchitectures></processorInfo>"
                "<vCpuInfo>%s</vCpuInfo><memoryInfo>%s</memoryInfo><instanceStorageSupported>false</instanceStorageSupported>"
                "<ebsInfo><ebsOptimizedSupport>default</ebsOptimizedSupport><encryptionSupport>supported</encryptionSupport>"
                "%s</ebsInfo><networkInfo>%s</networkInfo>%s<supportedBootModes>%s</supportedBootModes></item>" % (
                    x("instanceType", t["type"]), x("item", t["arch"]), x("defaultVCpus", t["vcpus"]),
                    x("sizeInMiB", mem), x("nvmeSupport", t["nvme"]), x("enaSupport", t["ena"]),
                    x("burstablePerformanceSupported", burst), boots))
        body = xset("instanceTypeSet", items)
        if nxt:
            body += x("nextToken", nxt)
        return body


class App:
    pass


def count_requests(d, action, status=None):
    n = 0
    with open(os.path.join(d, "requests.log")) as f:
        for line in f:
            e = json.loads(line)
            if e["action"] == action and (status is None or str(e["status"]) == str(status)):
                n += 1
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir")
    ap.add_argument("--port", type=int)
    ap.add_argument("--access-key", default="AKIDDVTEST000000000")
    ap.add_argument("--secret-key", default="dv-test-secret-key")
    ap.add_argument("--session-token")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--owner-id", default="123456789012")
    ap.add_argument("--catalog", help="instance-types CSV (default: embedded)")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--count", nargs="+", metavar=("DIR", "ACTION"),
                    help="print how many requests.log entries match ACTION [STATUS] and exit")
    a = ap.parse_args()
    if a.count:
        print(count_requests(a.count[0], a.count[1], a.count[2] if len(a.count) > 2 else None))
        return
    if not a.dir or not a.port:
        ap.error("--dir and --port are required")
    os.makedirs(a.dir, exist_ok=True)
    app = App()
    app.verbose = a.verbose
    app.access_key, app.secret_key, app.session_token = a.access_key, a.secret_key, a.session_token
    app.region, app.owner = a.region, a.owner_id
    app.lock = threading.Lock()
    app.stats = {}
    app.requests_log = os.path.join(a.dir, "requests.log")
    app.state = State(os.path.join(a.dir, "state"), a.owner_id, a.region, a.secret_key)
    app.faults = Faults(os.path.join(a.dir, "faults.json"), os.environ.get("EBS_EC2_FAULTS"))
    app.policy = Policy(os.path.join(a.dir, "policy.json"))
    text = open(a.catalog).read() if a.catalog else CATALOG_CSV
    app.catalog = list(csv.DictReader(io.StringIO(text)))
    Handler.app = app
    srv = Server(("127.0.0.1", a.port), Handler)
    sys.stderr.write("ebs_ec2_server: listening on http://127.0.0.1:%d (state in %s)\n" % (a.port, a.dir))
    sys.stderr.flush()
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

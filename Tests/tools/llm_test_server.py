#!/usr/bin/env python3
"""A scripted OpenAI-compatible chat server on 127.0.0.1 for the prompt-expand tests (standard library only).

  python3 Tests/tools/llm_test_server.py --script SCRIPT.json --port-file PORT --log LOG.jsonl

Listens on a free port and writes it to --port-file (atomically) once listening. Each POST takes the next entry
of the script's "responses" list, then "default". An entry is one of:
  {"kind": "ok", "content": "...", "finish_reason": "stop", "delay": 0.0}
      200 application/json completion; "{prompt}" in content becomes the text between the quotes of the
      last user turn, so distinct prompts give distinct answers
  {"kind": "status", "status": 429, "headers": {"Retry-After": "1"}, "body": "...", "content_type": "..."}
  {"kind": "raw", "status": 200, "content_type": "text/html", "body": "..."}   ("body_repeat": [text, n]
      instead of "body" sends text n times)
  {"kind": "hang"}   read the request, then never answer (until the server is stopped)
A script {"silent": true} instead opens a port that accepts no connection at all (for connect timeouts).
Every answered request is appended to --log as one JSON line (before its answer is sent): path, headers, body (parsed), start/end times and the
number of requests in flight when it arrived (max_in_flight across the run is the concurrency the test saw).
"""
import argparse
import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
state = {"next": 0, "in_flight": 0}


def write_port(port_file, port):
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(port))
    os.replace(tmp, port_file)


def silent(port_file):
    """A port whose accept queue is full: new connections are neither accepted nor refused (SYNs dropped),
    like a host behind a firewall that drops packets."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname())  # takes the one queue slot, never accepted
    write_port(port_file, listener.getsockname()[1])
    while True:
        time.sleep(3600)
    filler.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--script", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    script = json.load(open(args.script))
    if script.get("silent"):
        silent(args.port_file)
        return
    responses = script.get("responses", [])
    default = script.get("default", {"kind": "ok", "content": "expanded: {prompt}"})

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_POST(self):
            start = time.time()
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            with lock:
                i = state["next"]
                state["next"] += 1
                state["in_flight"] += 1
                in_flight = state["in_flight"]
            self.counted = True
            entry = responses[i] if i < len(responses) else default
            try:
                body = json.loads(raw)
            except Exception:
                body = {"unparsed": raw.decode("utf-8", "replace")}
            self.record = {
                "index": i, "path": self.path, "headers": dict(self.headers.items()), "body": body,
                "start": start, "in_flight": in_flight, "kind": entry.get("kind"),
            }
            try:
                self.answer(entry, body)
            finally:
                self.release()

        def release(self):
            # Leaves the in-flight count before the answer goes out: a client that starts its next request as
            # soon as it has read this one must not be counted as overlapping with it.
            # The request is logged here too, so the log is complete once the client has its answer.
            if getattr(self, "counted", False):
                self.counted = False
                self.record["end"] = time.time()
                with lock:
                    state["in_flight"] -= 1
                    with open(args.log, "a") as f:
                        f.write(json.dumps(self.record) + "\n")

        def send(self, status, content_type, payload, headers=None):
            self.release()
            data = payload.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()

        def answer(self, entry, body):
            kind = entry.get("kind", "ok")
            time.sleep(entry.get("delay", 0.0))
            if kind == "hang":
                time.sleep(3600)
                return
            if kind == "ok":
                prompt = ""
                msgs = body.get("messages") or []
                if msgs:
                    last = msgs[-1].get("content", "")
                    if '"' in last:
                        prompt = last[last.index('"') + 1:last.rindex('"')]
                content = entry.get("content", "expanded: {prompt}").replace("{prompt}", prompt)
                message = {"role": "assistant", "content": content}
                if "refusal" in entry:
                    message["refusal"] = entry["refusal"]
                reply = {
                    "id": "test", "object": "chat.completion", "created": 0, "model": body.get("model", ""),
                    "choices": [{"index": 0, "message": message, "finish_reason": entry.get("finish_reason", "stop")}],
                }
                if entry.get("no_choices"):
                    reply["choices"] = []
                self.send(200, "application/json", json.dumps(reply))
                return
            status = entry.get("status", 200)
            payload = entry.get("body", "")
            if "body_repeat" in entry:  # [text, count]: a large body
                payload = entry["body_repeat"][0] * entry["body_repeat"][1]
            self.send(status, entry.get("content_type", "application/json"), payload, entry.get("headers"))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    write_port(args.port_file, server.server_address[1])
    server.serve_forever()


if __name__ == "__main__":
    main()

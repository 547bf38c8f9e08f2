"""Linux clients for evloop's Windows examples running under Wine (see ../windows-examples).

    clients.py wait PORT             until PORT accepts connections (60 s at most)
    clients.py hello PORT N          N concurrent clients; each must read exactly b"Hello, World!\\n"
    clients.py echo PORT MIB         send MIB MiB on one connection; it must come back byte-exact
    clients.py http PORT N           N keep-alive GET requests on each of 4 connections; each
                                     answer must be the http-hello response
    clients.py https PORT N CA       http's N requests on each of 4 connections over TLS 1.3,
                                     verifying the server against the certificate file CA
    clients.py chat PORT             three chat clients: each line reaches the other two,
                                     prefixed by its sender, and never comes back to it
    clients.py proxy PORT MIB        through the proxy on PORT to a target served here on
                                     PORT+1000: MIB MiB up and 4 MiB down byte-exact, then the
                                     client's shutdown reaches the target as EOF after all bytes
"""
import concurrent.futures
import socket
import sys
import threading
import time


def wait(port):
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"port {port} never accepted a connection")
            time.sleep(0.2)


def hello(port, n):
    def client(_):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        data = b""
        while True:
            chunk = s.recv(256)
            if not chunk:
                return data
            data += chunk

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(client, range(n)))
    want = b"Hello, World!\n"
    exact = sum(a == want for a in answers)
    wrong = [a for a in answers if a != want][:3]
    print(f"hello: {exact} of {n} clients got exactly {want!r}")
    if exact != n:
        sys.exit(f"wrong answers: {wrong}")


def echo(port, mib):
    total = mib << 20
    data = bytes((i * 7 + i // 4096) % 251 for i in range(1 << 20)) * mib
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    got = bytearray()

    def reader():
        while len(got) < total:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            got.extend(chunk)

    t = threading.Thread(target=reader)
    t.start()
    s.sendall(data)
    t.join(120)
    s.close()
    print(f"echo: {len(got)} of {total} bytes came back")
    if bytes(got) != data:
        sys.exit("echo: the bytes differ")


def http(port, n):
    response = (b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\n"
                b"Hello, World!")

    def client(_):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        for _ in range(n):
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            while len(got) < len(response):
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            if got != response:
                return False
        s.close()
        return True

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        ok = sum(pool.map(client, range(4)))
    print(f"http: {ok} of 4 connections got {n} exact answers each")
    if ok != 4:
        sys.exit("http: wrong answers")


def hyper(port, n):
    """Like http, but the headers are hyper's (lower case, a date): check the status line,
    the length and the body, on four keep-alive connections."""

    def client(_):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        buf = b""
        for _ in range(n):
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    return False
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.lower().split(b"\r\n")
            if lines[0] != b"http/1.1 200 ok" or b"content-length: 13" not in lines:
                return False
            while len(buf) < 13:
                chunk = s.recv(4096)
                if not chunk:
                    return False
                buf += chunk
            if buf[:13] != b"Hello, World!":
                return False
            buf = buf[13:]
        s.close()
        return True

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        ok = sum(pool.map(client, range(4)))
    print(f"hyper: {ok} of 4 connections got {n} answers each, status, length and body right")
    if ok != 4:
        sys.exit("hyper: wrong answers")


def https(port, n, cafile):
    """http's exact answers over TLS: four keep-alive connections verifying the server's
    certificate against `cafile` (the one https-hello.exe printed), n requests each."""
    import ssl

    context = ssl.create_default_context(cafile=cafile)
    want = (b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\n"
            b"Hello, World!")

    def client(_):
        raw = socket.create_connection(("127.0.0.1", port), timeout=30)
        s = context.wrap_socket(raw, server_hostname="localhost")
        for _ in range(n):
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            got = b""
            while len(got) < len(want):
                chunk = s.recv(len(want) - len(got))
                if not chunk:
                    return False
                got += chunk
            if got != want:
                return False
        version = s.version()
        s.unwrap()  # close_notify, then the TCP close
        raw.close()
        return version == "TLSv1.3"

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        ok = sum(pool.map(client, range(4)))
    print(f"https: {ok} of 4 connections got {n} exact answers each over TLS 1.3, certificate verified")
    if ok != 4:
        sys.exit("https: wrong answers")


def lines_until(f, want):
    while True:
        line = f.readline()
        if not line:
            sys.exit(f"EOF before {want!r}")
        if line.rstrip(b"\r\n") == want:
            return


def chat(port):
    clients = []
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        name = "%s:%d" % s.getsockname()
        f = s.makefile("rb")
        lines_until(f, b"* you are " + name.encode())
        clients.append((s, f, name))
    for i, (s, _, name) in enumerate(clients):
        s.sendall(b"line from %d\n" % i)
        for j, (_, f, _) in enumerate(clients):
            if j != i:
                lines_until(f, b"%s: line from %d" % (name.encode(), i))
    # Nobody got their own line: each client's next line from itself would have come first.
    for s, f, _ in clients:
        s.close()
    print("chat: 3 clients, every line to the two others")


def proxy(port, mib):
    up_n, down_n = mib << 20, 4 << 20
    pattern = bytes(i * 7 % 251 for i in range(251))

    def data(n, shift):
        reps = (n + shift) // 251 + 2
        return (pattern * reps)[shift:shift + n]

    target = socket.socket()
    target.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    target.bind(("127.0.0.1", port + 1000))
    target.listen(1)
    got_up = bytearray()

    def serve():
        conn, _ = target.accept()
        conn.settimeout(60)
        conn.sendall(data(down_n, 3))
        time.sleep(0.5)  # the proxy must stop reading the client meanwhile
        while True:
            chunk = conn.recv(1 << 16)
            if not chunk:
                break
            got_up.extend(chunk)
        conn.close()

    t = threading.Thread(target=serve)
    t.start()
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    w = threading.Thread(target=lambda: s.sendall(data(up_n, 0)))
    w.start()
    down = bytearray()
    while len(down) < down_n:
        chunk = s.recv(1 << 16)
        if not chunk:
            sys.exit(f"proxy: EOF after {len(down)} bytes down")
        down.extend(chunk)
    w.join()
    s.shutdown(socket.SHUT_WR)
    t.join()
    if bytes(down) != data(down_n, 3):
        sys.exit("proxy: target to client corrupted")
    if bytes(got_up) != data(up_n, 0):
        sys.exit(f"proxy: client to target corrupted ({len(got_up)} of {up_n} bytes)")
    rest = s.recv(1 << 16)
    if rest:
        sys.exit("proxy: bytes after the end")
    s.close()
    print(f"proxy: {mib} MiB up, 4 MiB down, byte-exact; close after flush")


if __name__ == "__main__":
    cmd, port = sys.argv[1], int(sys.argv[2])
    if cmd == "wait":
        wait(port)
    elif cmd == "hello":
        hello(port, int(sys.argv[3]))
    elif cmd == "echo":
        echo(port, int(sys.argv[3]))
    elif cmd == "http":
        http(port, int(sys.argv[3]))
    elif cmd == "hyper":
        hyper(port, int(sys.argv[3]))
    elif cmd == "https":
        https(port, int(sys.argv[3]), sys.argv[4])
    elif cmd == "chat":
        chat(port)
    elif cmd == "proxy":
        proxy(port, int(sys.argv[3]))
    else:
        sys.exit(f"unknown command {cmd}")

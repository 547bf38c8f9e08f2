"""Linux clients for evloop's Windows examples running under Wine (see ../windows-examples).

    clients.py wait PORT             until PORT accepts connections (60 s at most)
    clients.py hello PORT N          N concurrent clients; each must read exactly b"Hello, World!\\n"
    clients.py echo PORT MIB         send MIB MiB on one connection; it must come back byte-exact
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


if __name__ == "__main__":
    cmd, port = sys.argv[1], int(sys.argv[2])
    if cmd == "wait":
        wait(port)
    elif cmd == "hello":
        hello(port, int(sys.argv[3]))
    elif cmd == "echo":
        echo(port, int(sys.argv[3]))
    else:
        sys.exit(f"unknown command {cmd}")

# A TLS peer written with Python's ssl module, for spec/io/tls_spec.lua.
#   tls_peer.py server CERT KEY   echo server: for each line, "sni=<name the
#                                  client sent, or None> " + the line upper-cased;
#                                  prints "PORT PID" when listening
#   tls_peer.py corrupt CERT KEY  after each handshake, a record that fails
#                                  its integrity check, sent under TLS's feet
#   tls_peer.py mtls CERT KEY CA  echo server that requires a client
#                                  certificate signed by CA; each answer
#                                  starts "client=<its subject CN>"
#   tls_peer.py client PORT CAFILE [NAME]  connects, verifying the server for NAME
#                                  (default localhost), sends a line, prints the
#                                  answer and the end it read, then exits
import os, socket, ssl, sys, threading

def serve(cert, key, corrupt=False, client_ca=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    names = {}
    ctx.sni_callback = lambda sock, name, _ctx: names.__setitem__(id(sock), name)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen()
    print(ls.getsockname()[1], os.getpid(), flush=True)
    def talk(raw):
        try:
            with ctx.wrap_socket(raw, server_side=True) as c:
                if corrupt:
                    c.sendall(b"sound\n")
                    os.write(c.fileno(), b"\x17\x03\x03\x00\x20" + os.urandom(32))
                    c.recv(1)
                    return
                f = c.makefile("rb")
                for line in f:
                    if client_ca:
                        cn = dict(x[0] for x in c.getpeercert()["subject"])["commonName"]
                        c.sendall(b"client=%s %s" % (cn.encode(), line.upper()))
                    else:
                        c.sendall(b"sni=%s %s" % (str(names.get(id(c))).encode(), line.upper()))
        except (ssl.SSLError, OSError):
            pass
    while True:
        raw, _ = ls.accept()
        threading.Thread(target=talk, args=(raw,), daemon=True).start()

def client(port, cafile, name):
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", int(port))) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as c:
            c.sendall(b"hello from python\n")
            f = c.makefile("rb")
            print(f.readline().decode().rstrip("\n"), c.version(), flush=True)

if sys.argv[1] in ("server", "corrupt", "mtls"):
    serve(sys.argv[2], sys.argv[3], sys.argv[1] == "corrupt", sys.argv[4] if sys.argv[1] == "mtls" else None)
else:
    client(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else "localhost")

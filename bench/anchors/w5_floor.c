/* The floor for W5 and the throughput rows: plain C on libuv, callbacks,
 * no runtime.  CLIENTS connections each do TRIPS round trips of SIZE
 * bytes against an echo server in the same process.
 *   cc -O2 -o w5_floor w5_floor.c -luv && ./w5_floor [CLIENTS TRIPS SIZE]
 * Prints "W5 <seconds>". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct { uv_write_t req; char data[]; } Write;
typedef struct { uv_tcp_t tcp; uv_connect_t conn; size_t got; int left; } Client;

static uv_loop_t *loop;
static size_t size;
static int trips, open_clients;
static char *msg;

static void on_alloc(uv_handle_t *h, size_t want, uv_buf_t *b) { (void)h; *b = uv_buf_init(malloc(want), (unsigned)want); }
static void on_written(uv_write_t *req, int status) { (void)status; free(req); }

static void send_bytes(uv_stream_t *s, const char *p, size_t n) {
  Write *w = malloc(sizeof *w + n);
  memcpy(w->data, p, n);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
  uv_write(&w->req, s, &b, 1, on_written);
}

static void echo_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  if (n > 0) send_bytes(s, b->base, (size_t)n);
  else if (n < 0) uv_close((uv_handle_t *)s, (uv_close_cb)free);
  free(b->base);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  uv_tcp_t *t = malloc(sizeof *t);
  uv_tcp_init(loop, t);
  uv_accept(server, (uv_stream_t *)t);
  uv_tcp_nodelay(t, 1);
  uv_read_start((uv_stream_t *)t, on_alloc, echo_read);
}

static void client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  Client *c = (Client *)s;
  free(b->base);
  if (n < 0) { uv_close((uv_handle_t *)s, NULL); return; }
  c->got += (size_t)n;
  while (c->got >= size) {
    c->got -= size;
    if (--c->left == 0) {
      uv_close((uv_handle_t *)s, NULL);
      if (--open_clients == 0) uv_stop(loop);
      return;
    }
    send_bytes(s, msg, size);
  }
}

static void on_connect(uv_connect_t *req, int status) {
  if (status < 0) { fprintf(stderr, "connect: %s\n", uv_strerror(status)); exit(1); }
  uv_stream_t *s = req->handle;
  uv_tcp_nodelay((uv_tcp_t *)s, 1);
  uv_read_start(s, on_alloc, client_read);
  send_bytes(s, msg, size);
}

int main(int argc, char **argv) {
  int clients = argc > 1 ? atoi(argv[1]) : 100;
  trips = argc > 2 ? atoi(argv[2]) : 1000;
  size = argc > 3 ? (size_t)atol(argv[3]) : 64;
  msg = malloc(size);
  memset(msg, 'x', size);
  loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  uv_tcp_init(loop, &server);
  uv_tcp_bind(&server, (struct sockaddr *)&addr, 0);
  uv_listen((uv_stream_t *)&server, 511, on_connection);
  int len = sizeof addr;
  uv_tcp_getsockname(&server, (struct sockaddr *)&addr, &len);
  uint64_t t0 = uv_hrtime();
  open_clients = clients;
  for (int i = 0; i < clients; i++) {
    Client *c = calloc(1, sizeof *c);
    c->left = trips;
    uv_tcp_init(loop, &c->tcp);
    uv_tcp_connect(&c->conn, &c->tcp, (struct sockaddr *)&addr, on_connect);
  }
  uv_run(loop, UV_RUN_DEFAULT);
  printf("W5 %.3f\n", (double)(uv_hrtime() - t0) / 1e9);
  return 0;
}

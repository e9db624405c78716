/*
 * fs.c - async.fs: file work on libuv's thread pool, while the loop goes
 * on.  Each call is one job (read a whole file, write one, stat, list,
 * mkdir, remove, rename, and a file object's open/read/write/sync/close):
 * its system calls run in the worker, its outcome settles a C API future
 * on the loop thread.  The awaitables are lazy (awaitable_new): nothing
 * is queued until they are awaited.  Failures are async.OSError with the
 * system's code (libuv's name for it: "ENOENT"), errno, and a message that
 * names the operation and the path.  The Lua side (buffered reads in the
 * io formats, lines, <close>) is in src/async/prelude.lua.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <lauxlib.h>
#include "lua_async.h"
#include "copy.h"
#include "io.h"

enum { FS_READ_FILE, FS_WRITE_FILE, FS_STAT, FS_LIST, FS_MKDIR, FS_REMOVE, FS_RENAME,
       FS_OPEN, FS_READ, FS_WRITE, FS_SYNC, FS_CLOSE, FS_KINDS };

typedef struct Fs {
  uv_work_t req;
  const lua_async_api *api;
  lua_async_future *fut;
  int kind;
  char *path, *path2;
  Bytes data;                    /* write: what to write; read: what was read */
  int flag1, flag2;              /* append/parents/recursive, sync */
  int mode, fd, flags;
  size_t n;                      /* read: how many bytes at most */
  struct stat st;
  int found;                     /* stat: the path exists */
  char **names; size_t nnames;   /* list */
  int err;                       /* errno of the failure, or 0 */
  const char *op;                /* the system call that failed */
} Fs;

static int fail(Fs *j, const char *op) { j->err = errno; j->op = op; return -1; }

static int read_fd(Fs *j, int fd, size_t max) {
  for (;;) {
    if (j->data.n == j->data.cap) {
      size_t cap = j->data.cap ? j->data.cap * 2 : 65536;
      char *p = realloc(j->data.p, cap);
      if (!p) { errno = ENOMEM; return fail(j, "read"); }
      j->data.p = p; j->data.cap = cap;
    }
    size_t want = j->data.cap - j->data.n;
    if (max && want > max - j->data.n) want = max - j->data.n;
    if (want == 0) return 0;
    ssize_t r = read(fd, j->data.p + j->data.n, want);
    if (r < 0) { if (errno == EINTR) continue; return fail(j, "read"); }
    if (r == 0) return 0;
    j->data.n += (size_t)r;
    if (max && j->data.n >= max) return 0;
  }
}

static int write_fd(Fs *j, int fd) {
  size_t off = 0;
  while (off < j->data.n) {
    ssize_t w = write(fd, j->data.p + off, j->data.n - off);
    if (w < 0) { if (errno == EINTR) continue; return fail(j, "write"); }
    off += (size_t)w;
  }
  return 0;
}

/* a buffer for the whole file, of the size fstat gives (+1, so that the
 * read that finds the end needs no growth; it still grows if the file
 * does): doubling from 64 KiB made a 256 MiB file a 512 MiB buffer */
static void size_for_file(Fs *j, int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) return;
  if ((uintmax_t)st.st_size >= SIZE_MAX) return;
  size_t n = (size_t)st.st_size + 1;
  char *p = malloc(n);
  if (p) { j->data.p = p; j->data.cap = n; }
}

static void do_read_file(Fs *j) {
  int fd = open(j->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) { fail(j, "open"); return; }
  size_for_file(j, fd);
  read_fd(j, fd, 0);
  close(fd);
}

static void do_write_file(Fs *j) {
  int fd = open(j->path, O_WRONLY | O_CREAT | O_CLOEXEC | (j->flag1 ? O_APPEND : O_TRUNC), j->mode);
  if (fd < 0) { fail(j, "open"); return; }
  if (write_fd(j, fd) == 0 && j->flag2 && fsync(fd) != 0) fail(j, "fsync");
  if (close(fd) != 0 && !j->err) fail(j, "close");
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void do_list(Fs *j) {
  DIR *d = opendir(j->path);
  if (!d) { fail(j, "opendir"); return; }
  size_t cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (j->nnames == cap) {
      cap = cap ? cap * 2 : 32;
      char **p = realloc(j->names, cap * sizeof *p);
      if (!p) { errno = ENOMEM; fail(j, "readdir"); break; }
      j->names = p;
    }
    if (!(j->names[j->nnames] = strdup(e->d_name))) { errno = ENOMEM; fail(j, "readdir"); break; }
    j->nnames++;
  }
  closedir(d);
  if (!j->err) qsort(j->names, j->nnames, sizeof *j->names, cmp_names);
}

static void do_mkdir(Fs *j) {
  if (!j->flag1) { if (mkdir(j->path, (mode_t)j->mode) != 0) fail(j, "mkdir"); return; }
  /* parents: each component in turn; one that exists as a directory is fine */
  char *p = j->path;
  for (char *s = p + 1; ; s++) {
    if (*s != '/' && *s != '\0') continue;
    char c = *s;
    *s = '\0';
    struct stat st;
    int rc = mkdir(p, (mode_t)j->mode);
    int ok = rc == 0 || (errno == EEXIST && stat(p, &st) == 0 && S_ISDIR(st.st_mode));
    if (!ok && errno != EEXIST) { fail(j, "mkdir"); *s = c; return; }
    if (!ok) { errno = ENOTDIR; fail(j, "mkdir"); *s = c; return; }
    *s = c;
    if (c == '\0') return;
  }
}

/* remove path; a directory's contents first when recursive */
static int remove_path(Fs *j, char *path, int recursive) {
  struct stat st;
  if (lstat(path, &st) != 0) return fail(j, "lstat");
  if (!S_ISDIR(st.st_mode)) return unlink(path) == 0 ? 0 : fail(j, "unlink");
  if (recursive) {
    DIR *d = opendir(path);
    if (!d) return fail(j, "opendir");
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      size_t n = strlen(path) + strlen(e->d_name) + 2;
      char *sub = malloc(n);
      if (!sub) { errno = ENOMEM; rc = fail(j, "remove"); break; }
      snprintf(sub, n, "%s/%s", path, e->d_name);
      rc = remove_path(j, sub, 1);
      free(sub);
    }
    closedir(d);
    if (rc != 0) return rc;
  }
  return rmdir(path) == 0 ? 0 : fail(j, "rmdir");
}

static int open_flags(const char *mode) {
  int plus = strchr(mode, '+') != NULL;
  switch (mode[0]) {
    case 'r': return plus ? O_RDWR : O_RDONLY;
    case 'w': return (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_TRUNC;
    case 'a': return (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_APPEND;
    default: return -1;
  }
}

static void run_fs(uv_work_t *req) {
  Fs *j = req->data;
  switch (j->kind) {
    case FS_READ_FILE: do_read_file(j); break;
    case FS_WRITE_FILE: do_write_file(j); break;
    case FS_STAT:
      if (lstat(j->path, &j->st) == 0) j->found = 1;
      else if (errno != ENOENT && errno != ENOTDIR) fail(j, "stat");
      break;
    case FS_LIST: do_list(j); break;
    case FS_MKDIR: do_mkdir(j); break;
    case FS_REMOVE: remove_path(j, j->path, j->flag1); break;
    case FS_RENAME: if (rename(j->path, j->path2) != 0) fail(j, "rename"); break;
    case FS_OPEN:
      if ((j->fd = open(j->path, j->flags | O_CLOEXEC, j->mode)) < 0) fail(j, "open");
      break;
    case FS_READ: read_fd(j, j->fd, j->n); break;
    case FS_WRITE: write_fd(j, j->fd); break;
    case FS_SYNC: if (fsync(j->fd) != 0) fail(j, "fsync"); break;
    case FS_CLOSE: if (close(j->fd) != 0) fail(j, "close"); break;
  }
}

/* ---- on the loop thread ------------------------------------------------- */

static void fs_free(Fs *j) {
  free(j->path); free(j->path2);
  bytes_clear(&j->data);
  for (size_t i = 0; i < j->nnames; i++) free(j->names[i]);
  free(j->names);
  free(j);
}

/* push async.OSError for errno err: code, errno, and "op path: reason" */
void io_push_oserror(lua_State *L, const lua_async_api *api, int err, const char *op, const char *what) {
  char msg[600];
  snprintf(msg, sizeof msg, "%s %s: %s", op, what ? what : "", strerror(err));
  api->error_new(L, "OSError", msg);
  lua_pushstring(L, uv_err_name(uv_translate_sys_error(err)));
  lua_setfield(L, -2, "code");
  lua_pushinteger(L, err);
  lua_setfield(L, -2, "errno");
}

/* push an error of class cls for the libuv error rc: "what: reason", code
 * its libuv name ("ECONNREFUSED") */
void io_push_uverror(lua_State *L, const lua_async_api *api, const char *cls, int rc, const char *what) {
  char msg[1200];
  snprintf(msg, sizeof msg, "%s: %s", what, uv_strerror(rc));
  api->error_new(L, cls, msg);
  lua_pushstring(L, uv_err_name(rc));
  lua_setfield(L, -2, "code");
}

static int push_stat(lua_State *L, const struct stat *st) {
  lua_createtable(L, 0, 4);
  const char *type = S_ISREG(st->st_mode) ? "file" : S_ISDIR(st->st_mode) ? "directory"
                   : S_ISLNK(st->st_mode) ? "link" : "other";
  lua_pushstring(L, type); lua_setfield(L, -2, "type");
  lua_pushinteger(L, (lua_Integer)st->st_size); lua_setfield(L, -2, "size");
  lua_pushnumber(L, (double)st->st_mtim.tv_sec + st->st_mtim.tv_nsec / 1e9); lua_setfield(L, -2, "mtime");
  lua_pushinteger(L, st->st_mode & 07777); lua_setfield(L, -2, "mode");
  return 1;
}

static int push_outcome(lua_State *L, Fs *j) {
  switch (j->kind) {
    case FS_READ_FILE: case FS_READ: lua_pushlstring(L, j->data.p ? j->data.p : "", j->data.n); return 1;
    case FS_STAT: if (!j->found) { lua_pushnil(L); return 1; } return push_stat(L, &j->st);
    case FS_LIST:
      lua_createtable(L, (int)j->nnames, 0);
      for (size_t i = 0; i < j->nnames; i++) { lua_pushstring(L, j->names[i]); lua_rawseti(L, -2, (lua_Integer)i + 1); }
      return 1;
    case FS_OPEN: lua_pushinteger(L, j->fd); return 1;
    default: lua_pushboolean(L, 1); return 1;
  }
}

static void fs_done(uv_work_t *req, int status) {
  Fs *j = req->data;
  lua_State *L = j->api->state(j->fut);
  if (status != 0 && !j->err) { j->err = ECANCELED; j->op = j->op ? j->op : "queue"; }
  if (j->err) {
    io_push_oserror(L, j->api, j->err, j->op, j->path);
    j->api->reject(j->fut);
  } else {
    j->api->resolve(j->fut, push_outcome(L, j));
  }
  fs_free(j);
}

/* a copy of the path at idx (none: NULL) */
static char *dup_path(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TSTRING) return NULL;
  size_t n;
  const char *s = lua_tolstring(L, idx, &n);
  char *p = malloc(n + 1);
  if (p) memcpy(p, s, n + 1);
  return p;
}

/* the bytes to write, at idx: 0, or -1 (no memory) */
static int take_data(Fs *j, lua_State *L, int idx) {
  size_t n;
  const char *s = luaL_checklstring(L, idx, &n);
  if (n && !(j->data.p = malloc(n))) return -1;
  if (n) memcpy(j->data.p, s, n);
  j->data.n = j->data.cap = n;
  return 0;
}

/* the awaitable's start: stack = kind, its arguments (checked by the prelude) */
static int start_fs(lua_State *L) {
  const lua_async_api *api = lua_async_get_api(L);
  Fs *j = calloc(1, sizeof *j);
  if (!j) return luaL_error(L, "async.fs: out of memory");
  j->kind = (int)lua_tointeger(L, 1);
  j->fd = -1;
  j->mode = 0644;
  int nomem = 0;
  if (j->kind <= FS_OPEN) j->path = dup_path(L, 2);
  switch (j->kind) {
    case FS_WRITE_FILE:
      nomem = take_data(j, L, 3);
      j->flag1 = lua_toboolean(L, 4); j->mode = (int)luaL_optinteger(L, 5, 0644); j->flag2 = lua_toboolean(L, 6);
      break;
    case FS_MKDIR: j->flag1 = lua_toboolean(L, 3); j->mode = (int)luaL_optinteger(L, 4, 0777); break;
    case FS_REMOVE: j->flag1 = lua_toboolean(L, 3); break;
    case FS_RENAME: j->path2 = dup_path(L, 3); break;
    case FS_OPEN: j->flags = open_flags(luaL_checkstring(L, 3)); break;
    /* a file object's: (fd, ..., its path for messages) */
    case FS_READ: j->fd = (int)luaL_checkinteger(L, 2); j->n = (size_t)luaL_checkinteger(L, 3); j->path = dup_path(L, 4); break;
    case FS_WRITE: j->fd = (int)luaL_checkinteger(L, 2); nomem = take_data(j, L, 3); j->path = dup_path(L, 4); break;
    case FS_SYNC: case FS_CLOSE: j->fd = (int)luaL_checkinteger(L, 2); j->path = dup_path(L, 3); break;
  }
  if (nomem || (j->kind <= FS_OPEN && !j->path) || (j->kind == FS_RENAME && !j->path2) || j->flags < 0) {
    int bad_mode = j->flags < 0;
    fs_free(j);
    return bad_mode ? luaL_error(L, "async.fs.open: mode must be \"r\", \"w\", \"a\", \"r+\", \"w+\" or \"a+\"")
                    : luaL_error(L, "async.fs: out of memory");
  }
  j->api = api;
  j->req.data = j;
  j->fut = api->future_new(L);
  int rc = uv_queue_work(api->loop(L), &j->req, run_fs, fs_done);
  if (rc != 0) {
    lua_pop(L, 1);
    fs_free(j);
    return luaL_error(L, "async.fs: cannot queue work: %s", uv_strerror(rc));
  }
  return 1;
}

/* fs_op(kind, ...): a lazy awaitable */
int io_fs_op(lua_State *L) {
  lua_Integer kind = luaL_checkinteger(L, 1);
  if (kind < 0 || kind >= FS_KINDS) return luaL_error(L, "async.fs: no such operation");
  lua_async_get_api(L)->awaitable_new(L, start_fs, lua_gettop(L));
  return 1;
}

/* fs_seek(fd, whence, offset): the new position (lseek: no wait worth a job) */
int io_fs_seek(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  const char *whence = luaL_checkstring(L, 2);
  int w = strcmp(whence, "set") == 0 ? SEEK_SET : strcmp(whence, "end") == 0 ? SEEK_END : SEEK_CUR;
  off_t at = lseek(fd, (off_t)luaL_checkinteger(L, 3), w);
  if (at < 0) { io_push_oserror(L, lua_async_get_api(L), errno, "seek", NULL); return lua_error(L); }
  lua_pushinteger(L, (lua_Integer)at);
  return 1;
}

/* fs_close_now(fd): a file object collected unclosed (close(2) does not wait) */
int io_fs_close_now(lua_State *L) {
  close((int)luaL_checkinteger(L, 1));
  return 0;
}

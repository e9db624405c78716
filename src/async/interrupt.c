/*
 * interrupt.c - Ctrl-C during async.run, as Python 3.11's asyncio.run.
 *
 * While run runs, a uv_signal_t watches SIGINT (unreferenced: it never
 * keeps the loop alive).  The first SIGINT cancels the main task, so every
 * <close> and pcall cleanup runs, and may await; run then raises
 * async.Interrupted.  A second SIGINT during that cleanup stops the
 * process at once, as an unhandled SIGINT does.  A script with its own
 * SIGINT handler (async.on_signal sets lp->sigint_taken) gets the signal
 * instead.
 */
#include <signal.h>
#include <stdlib.h>
#include "core.h"

static void on_sigint(uv_signal_t *s, int signum) {
  Loop *lp = s->data;
  (void)signum;
  if (lp->sigint_taken) return;              /* the script's own handler has it */
  if (lp->interrupted++ > 0) {               /* the second: stop now */
    signal(SIGINT, SIG_DFL);
    raise(SIGINT);
    return;
  }
  lua_State *L = lp->LL;
  int top = lua_gettop(L);
  push_task(L, lp, lp->main_task);
  lua_pushliteral(L, "interrupted (SIGINT)");
  task_cancel(L, lp, top + 1, top + 2);
  lua_settop(L, top);
}

static void free_closed(uv_handle_t *h) { free(h); }

void interrupt_start(Loop *lp, Task *main) {
  lp->interrupted = 0;
  lp->main_task = main;
  uv_signal_t *s = malloc(sizeof *s);
  if (!s) return;                            /* then Ctrl-C is the default: the process ends */
  if (uv_signal_init(lp->uv, s) != 0) { free(s); return; }
  s->data = lp;
  uv_signal_start(s, on_sigint, SIGINT);
  uv_unref((uv_handle_t *)s);
  lp->sigint = s;
}

void interrupt_stop(Loop *lp) {
  if (lp->sigint) uv_close((uv_handle_t *)lp->sigint, free_closed);
  lp->sigint = NULL;
  lp->main_task = NULL;
}

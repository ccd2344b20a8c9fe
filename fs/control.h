/* The control file: how lockstat reads lock state from a running daemon.
 *
 * Every lockfs mount has a hidden regular file CONTROL_NAME at its root. It is
 * not in any directory listing and not in the source directory; a lookup of
 * that exact name at the root finds it (shadowing a source file of the same
 * name). Anyone who can use the mount can open it, so lock state is visible
 * to exactly the users the mount serves, with no socket to secure or find.
 *
 * Protocol (docs/lockstat.1 documents it for users):
 *   - open O_RDONLY and read: a snapshot of the holders and waiters, taken at
 *     the handle's first read; later reads of the same handle page through
 *     that one snapshot.
 *   - open O_RDWR, write one request line, then read the reply from offset 0:
 *       "snapshot\n"          holders and waiters (the default)
 *       "stats\n"             holders, waiters and per-file statistics
 *       "reset\n"             zero the statistics (the mount's owner or root)
 *   The reply is line-based text (see control_format() in control.c) that
 *   tools/lockstat parses with tools/ctlproto.c.
 *
 * The passthrough routes the control inode's lookup/getattr/open/read/write/
 * release here; nothing in this module touches FUSE directly, so the request
 * parser can be fuzzed on its own. */
#ifndef LOCKFS_CONTROL_H
#define LOCKFS_CONTROL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "locktable.h"

#define CONTROL_NAME ".lockfs-control"
/* The longest request accepted; the longest valid one is far shorter. A
 * caller may pass just the first CONTROL_MAX_REQUEST + 1 bytes of a longer
 * write: it is refused all the same. */
#define CONTROL_MAX_REQUEST 64

struct control;
struct locking;
struct lockfs_config;

/* Resolves a lock key to a path relative to the mount root (no leading '/');
 * returns 0, or -ENOENT when the file is no longer known. */
typedef int (*control_path_fn)(void *arg, lt_file_t file, char *buf, size_t len);

/* The mount point, source, lease, lock timeout, long_read, reader_wait and
 * calm_after shown in every reply are copied from cfg (NULL strings show as
 * empty). 0 or -ENOMEM. */
int control_new(struct control **out, struct locking *l, control_path_fn path_of,
		void *path_arg, const struct lockfs_config *cfg);
/* Also frees the handles still open (the kernel never released them). */
void control_free(struct control *c);

/* One open of the control file. */
struct control_handle;
int control_open(struct control *c, struct control_handle **out);
/* A request written by `caller`; 0, or -EINVAL for a malformed request
 * (the handle then reads back an "error" line), -EPERM for reset by others. */
int control_write(struct control *c, struct control_handle *h, const char *buf,
		  size_t len, uid_t caller);
/* Copies up to `size` bytes of the reply at `off`; returns the count. */
ssize_t control_read(struct control *c, struct control_handle *h, char *buf,
		     size_t size, off_t off);
void control_release(struct control_handle *h);

/* Exposed for the fuzz target and unit tests: parses one request. Returns the
 * request kind (>= 0) or -EINVAL. */
enum control_request { CONTROL_SNAPSHOT, CONTROL_STATS, CONTROL_RESET };
int control_parse_request(const char *buf, size_t len);

#endif

/* The passthrough: every FUSE low-level operation, carried out on the source
 * directory, with opens and name changes routed through fs/locking.h.
 *
 * The session's userdata is a struct passthrough. */
#ifndef LOCKFS_PASSTHROUGH_H
#define LOCKFS_PASSTHROUGH_H

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <sys/types.h>

struct passthrough;
struct locking;
struct lockfs_config;

extern const struct fuse_lowlevel_ops passthrough_ops;

/* cfg->source_fd must be open. 0 or -errno. */
int passthrough_new(struct passthrough **out, const struct lockfs_config *cfg,
		    struct locking *locking);
/* Needed for cache invalidation notices; call before the session loop. */
void passthrough_set_session(struct passthrough *pt, struct fuse_session *se);
/* The mount exists: learns its device, which tells a closing process's
 * descriptors on this mount (and its bind mounts) from others. Call before
 * the session loop. */
void passthrough_mounted(struct passthrough *pt);
void passthrough_free(struct passthrough *pt);
/* fsync of the source file (dev, ino), if the daemon knows it: 0, -ENOENT
 * when it does not (the kernel forgot it, so no handle of it is open), or
 * -errno. Cluster mode calls it before handing a file's lock over. */
int passthrough_sync_file(struct passthrough *pt, dev_t dev, ino_t ino);

#endif

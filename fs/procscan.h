/* What other processes have open or mapped, read from /proc.
 *
 * A file of the mount is named by (dev, ino): dev is the device number of
 * the lockfs mount (shared by all its bind mounts, in every mount namespace),
 * ino the inode number the kernel shows for the file. Descriptors are found
 * by the mount they belong to, never by the path string they print, which
 * depends on the bind mount and the namespace they were opened through.
 * dev == 0 means "device not known": match on the inode number alone, which
 * can only count a file of another file system as held, never miss one.
 *
 * Nothing here touches the files or the mounts themselves, only /proc, so
 * the daemon may call it from a request thread without ever waiting on its
 * own mount. No FUSE in here, and no state but the probes below (their
 * own mutex): every function is thread-safe. */
#ifndef LOCKFS_PROCSCAN_H
#define LOCKFS_PROCSCAN_H

#include <stdbool.h>
#include <sys/types.h>

/* Whether process tgid has a descriptor on (dev, ino). Errs on the side of
 * "yes": a process with more than max_fds descriptors, or whose descriptor
 * table (or mount table, when needed) cannot be read, counts as holding; a
 * process that is gone holds nothing. */
bool procscan_has_fd_on(pid_t tgid, dev_t dev, ino_t ino, unsigned max_fds);

/* The same question, answered with descriptors kept open between calls:
 * /proc/PID/fd and each descriptor's /proc/PID/fdinfo/N of the last few
 * processes asked about twice. fdinfo names whatever descriptor N is at
 * the time of each read, and fails once the process is gone, so a kept one
 * is read again with one pread() instead of the readlinkat(), openat(),
 * read() and close() of procscan_has_fd_on, which a process that closes
 * file after file (tar, cp, rsync) pays at every close. The answers are
 * the same; whatever the kept descriptors cannot answer (a kernel without
 * "ino:" in fdinfo, no descriptors left, a probe in use by another
 * thread, a process seen once) goes to procscan_has_fd_on.
 *
 * The probes' state, one mutex of their own (held only to take and give
 * back a process's record, never during a system call). At most
 * max_probe_fds descriptors in all; fewer than 16 turns the keeping off. */
struct procscan_probes;

int procscan_probes_new(struct procscan_probes **out, unsigned max_probe_fds);
void procscan_probes_free(struct procscan_probes *p);
/* p may be NULL: then procscan_has_fd_on itself. */
bool procscan_probe_has_fd_on(struct procscan_probes *p, pid_t tgid, dev_t dev, ino_t ino,
			      unsigned max_fds);

/* Whether process tgid maps (dev, ino) shared and writable, so that its
 * writes may go on with no descriptor left. False when its maps cannot be
 * read. */
bool procscan_mapped_writable(pid_t tgid, dev_t dev, ino_t ino);

/* The device of the FUSE mount whose mount point is the absolute path
 * `mountpoint` (as realpath() gives it) in this process's mount namespace:
 * the last such mount in /proc/self/mountinfo, i.e. the one on top. Reads
 * only mountinfo, so it is safe while the mount does not answer yet.
 * 0, -ENOENT when there is none, -EINVAL for a relative path, or -errno.
 * A MOUNTPOINT given as /dev/fd/N (the mount was made by someone else, who
 * passed the /dev/fuse descriptor) is no path in mountinfo and gives
 * -ENOENT: the caller then keeps dev 0. */
int procscan_mount_dev(const char *mountpoint, dev_t *out);

/* Runnable tasks on the machine now (the running count of /proc/loadavg,
 * the caller included); 0 when it cannot be read. */
long procscan_running_tasks(void);

/* Whether the program around thread tid of process pid may still be at
 * work: tid, another thread of pid, or one of tid's children is running,
 * runnable or waiting in the kernel (state R or D), not asleep on something
 * of its own. At most 64 tasks are looked at, one small read each. */
bool procscan_program_active(pid_t pid, pid_t tid);

/* ---- for the unit tests --------------------------------------------------- */

/* One line of /proc/PID/mountinfo, split in place. */
struct procscan_mount {
	unsigned long long id;  /* field 1, the mnt_id of fdinfo */
	dev_t dev;              /* field 3, "major:minor" */
	const char *point;      /* field 5, octal escapes (\040) decoded */
	const char *fstype;     /* first field after " - " */
};

/* Parses `line` (modified: fields are cut and unescaped in place).
 * 0, or -EINVAL when it is not a mountinfo line. */
int procscan_parse_mountinfo_line(char *line, struct procscan_mount *m);

/* Whether a line of /proc/PID/maps is a shared writable mapping of
 * (dev, ino); dev 0 matches any device. */
bool procscan_maps_line_matches(const char *line, dev_t dev, ino_t ino);

#endif

/* lockfs: the daemon's command line, mount and lifetime.
 *
 *   lockfs SOURCE MOUNTPOINT [-f] [-d] [-s] [-o opt,...]
 *
 * The options are parsed in options.c.
 *
 * Mount point rules:
 *   - SOURCE == MOUNTPOINT (in place) is supported: SOURCE is opened before
 *     mounting, so the daemon keeps reaching the directory underneath.
 *   - A MOUNTPOINT that is already the root of a mount is refused, because
 *     mounting over it would hide that file system (usually a second mount
 *     by mistake). The exception is an in-place mount: mounting lockfs over
 *     the root of a plain file system (`lockfs /srv/data /srv/data` where
 *     /srv/data is a disk) is exactly what in-place mode is for. Only a
 *     lockfs already mounted there is refused, since stacking lockfs on
 *     lockfs in place is always a repeated mount.
 *   - A MOUNTPOINT strictly inside SOURCE is refused: the daemon would find
 *     its own mount while walking SOURCE and call into itself.
 *   - MOUNTPOINT may be /dev/fd/N, the form mount.fuse3 uses with
 *     -o drop_privileges (the device is already open and mounted).
 *
 * Exit status: 0 after a clean unmount (fusermount3 -u, umount, or SIGINT,
 * SIGTERM, SIGHUP), 1 for every error; each error is one line on stderr. */
#include "cluster.h"
#include "config.h"
#include "inode.h"
#include "locking.h"
#include "log.h"
#include "options.h"
#include "passthrough.h"
#include "policy.h"
#include "workers.h"

#include <fuse_opt.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>


/* libfuse writes its messages in pieces ("unknown option(s): `", then each
 * option, then "'\n"), so they are gathered per thread into whole lines and
 * passed on through log.h, with the "fuse: " prefix replaced by ours. */
static __thread char fuse_line[1024];
static __thread size_t fuse_line_len;
/* Counts libfuse's error lines so that main() does not add a second line
 * about the same failure. Atomic because libfuse may log from any worker
 * thread; main() only reads it before the session loop starts. */
static atomic_uint fuse_errors_seen;

static void emit_fuse_line(enum fuse_log_level level)
{
	const char *s = fuse_line;
	const char *unknown = "unknown option(s): ";
	enum log_level lvl;

	if (strncmp(s, "fuse: ", 6) == 0)
		s += 6;
	if (!*s)
		return;
	if (level <= FUSE_LOG_ERR) {
		lvl = LOG_LVL_ERROR;
		fuse_errors_seen++;
	} else if (level == FUSE_LOG_WARNING) {
		lvl = LOG_LVL_WARN;
	} else if (level <= FUSE_LOG_INFO) {
		lvl = LOG_LVL_INFO;
	} else {
		lvl = LOG_LVL_DEBUG;
	}
	if (strncmp(s, unknown, strlen(unknown)) == 0) {
		/* libfuse quotes what is left as `-o a,b' */
		const char *list = s + strlen(unknown);
		size_t n;

		if (*list == '`')
			list++;
		if (strncmp(list, "-o ", 3) == 0)
			list += 3;
		n = strlen(list);
		if (n && list[n - 1] == '\'')
			n--;
		log_msg(lvl, "unknown option(s): %.*s (neither lockfs nor FUSE knows them, see lockfs --help)",
			(int)n, list);
	} else
		log_msg(lvl, "%s", s);
}

static void fuse_log_relay(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char piece[1024];
	int n = vsnprintf(piece, sizeof(piece), fmt, ap);

	if (n < 0)
		return;
	for (const char *p = piece; *p; p++) {
		if (*p == '\n' || fuse_line_len == sizeof(fuse_line) - 1) {
			fuse_line[fuse_line_len] = '\0';
			emit_fuse_line(level);
			fuse_line_len = 0;
			if (*p == '\n')
				continue;
		}
		fuse_line[fuse_line_len++] = *p;
	}
}

static bool is_dev_fd_path(const char *path)
{
	const char *p = path;

	if (strncmp(p, "/dev/fd/", 8) != 0)
		return false;
	p += 8;
	if (!*p)
		return false;
	for (; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

/* The file system type of the mount whose root `path` is (e.g.
 * "fuse.lockfs"), "" when not found. */
static void mount_type_of(const char *path, char *type, size_t size)
{
	struct statx stx;
	char line[8192];
	FILE *f;

	type[0] = '\0';
	if (statx(AT_FDCWD, path, AT_NO_AUTOMOUNT, STATX_MNT_ID, &stx) != 0 ||
	    !(stx.stx_mask & STATX_MNT_ID))
		return;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long id;
		const char *sep;

		if (sscanf(line, "%llu", &id) != 1 || id != stx.stx_mnt_id)
			continue;
		sep = strstr(line, " - ");
		if (sep) {
			size_t n = strcspn(sep + 3, " \n");

			if (n >= size)
				n = size - 1;
			memcpy(type, sep + 3, n);
			type[n] = '\0';
		}
		break;
	}
	fclose(f);
}

/* 1 if `path` is the root of a mount, 0 if not, -errno. */
static int is_mount_root(const char *path)
{
	struct statx stx;
	struct stat st, parent;
	char up[PATH_MAX + 4];

	if (statx(AT_FDCWD, path, AT_NO_AUTOMOUNT, STATX_BASIC_STATS, &stx) != 0)
		return -errno;
	if (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)
		return !!(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
	/* Kernels before 5.8 do not say; a change of device is the classic
	 * sign (it misses bind mounts within one file system). */
	snprintf(up, sizeof(up), "%s/..", path);
	if (stat(path, &st) != 0 || stat(up, &parent) != 0)
		return -errno;
	return st.st_dev != parent.st_dev || st.st_ino == parent.st_ino;
}

/* Checks SOURCE and MOUNTPOINT and fills cfg->source_fd and the absolute
 * cfg->mountpoint. *fsname gets the absolute SOURCE path. */
static int check_paths(struct lockfs_config *cfg, char **fsname)
{
	struct stat src_st, mnt_st;
	char *abs_src, *abs_mnt;
	bool in_place;
	int fd, r;

	fd = open(cfg->source, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOTDIR)
			log_err("source '%s' is not a directory", cfg->source);
		else
			log_err("source '%s': %s", cfg->source, strerror(errno));
		return -1;
	}
	cfg->source_fd = fd;
	abs_src = realpath(cfg->source, NULL);
	if (!abs_src || fstat(fd, &src_st) != 0) {
		log_err("source '%s': %s", cfg->source, strerror(errno));
		free(abs_src);
		return -1;
	}
	*fsname = abs_src;

	if (is_dev_fd_path(cfg->mountpoint))
		return 0;

	abs_mnt = realpath(cfg->mountpoint, NULL);
	if (!abs_mnt) {
		if (errno == ENOTDIR)
			log_err("mountpoint '%s' is not a directory", cfg->mountpoint);
		else
			log_err("mountpoint '%s': %s", cfg->mountpoint, strerror(errno));
		return -1;
	}
	if (stat(abs_mnt, &mnt_st) != 0) {
		log_err("mountpoint '%s': %s", cfg->mountpoint, strerror(errno));
		free(abs_mnt);
		return -1;
	}
	if (!S_ISDIR(mnt_st.st_mode)) {
		log_err("mountpoint '%s' is not a directory", cfg->mountpoint);
		free(abs_mnt);
		return -1;
	}
	in_place = src_st.st_dev == mnt_st.st_dev && src_st.st_ino == mnt_st.st_ino;

	r = is_mount_root(abs_mnt);
	if (r < 0) {
		log_err("mountpoint '%s': %s", cfg->mountpoint, strerror(-r));
		free(abs_mnt);
		return -1;
	}
	if (r > 0) {
		char type[128];

		mount_type_of(abs_mnt, type, sizeof(type));
		if (!in_place) {
			log_err("mountpoint '%s' is already a mount point%s%s%s (mount elsewhere, or in place with SOURCE == MOUNTPOINT)",
			     cfg->mountpoint, type[0] ? " (type " : "", type,
			     type[0] ? ")" : "");
			free(abs_mnt);
			return -1;
		}
		if (strcmp(type, "fuse.lockfs") == 0) {
			log_err("mountpoint '%s' is already mounted by lockfs", cfg->mountpoint);
			free(abs_mnt);
			return -1;
		}
	}
	if (!in_place) {
		size_t n = strlen(abs_src);

		if (strncmp(abs_mnt, abs_src, n) == 0 &&
		    (abs_mnt[n] == '/' || n == 1)) {
			log_err("mountpoint '%s' is inside source '%s' (lockfs would see its own mount)",
			     cfg->mountpoint, cfg->source);
			free(abs_mnt);
			return -1;
		}
	}
	free(cfg->mountpoint);
	cfg->mountpoint = abs_mnt;
	return 0;
}

/* libfuse would fall back to fusermount3 and print several lines of its own;
 * one line saying what is wrong is more useful. */
static int check_dev_fuse(void)
{
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		if (errno == ENOENT || errno == ENODEV || errno == ENXIO)
			log_err("cannot open /dev/fuse: %s (is the fuse module loaded?)", strerror(errno));
		else
			log_err("cannot open /dev/fuse: %s", strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

static int run_loop(struct fuse_session *se, const struct lockfs_config *cfg)
{
	if (cfg->single_thread)
		return fuse_session_loop(se);
	return workers_run(se, cfg->threads);
}

static void free_config(struct lockfs_config *cfg)
{
	if (cfg->source_fd >= 0)
		close(cfg->source_fd);
	policy_free(cfg->policy);
	free(cfg->policy_file);
	free(cfg->source);
	free(cfg->mountpoint);
	free(cfg->cluster);
}

/* The source's device, for cluster_name; set before the session. */
static dev_t source_dev;

/* The inode number of a lock key on the source's device: the key is st_ino
 * mixed with st_dev (inode_lock_key), a bijection of st_ino on one device
 * that maps inode number d to key d (key 0 is never used). */
static ino_t key_ino(lt_file_t file)
{
	uint64_t d = inode_lock_key(source_dev, 0), ino = file ^ d;

	return ino ? (ino_t)ino : (ino_t)d;
}

/* A file's name in the cluster, from its lock key: its inode number on the
 * source's own device (key_ino). The handle is left out: every daemon of a
 * cluster must name files alike, and the key is all the lock table has. */
static int cluster_name(void *arg, lt_file_t file, char *buf, size_t size)
{
	return cluster_file_name(key_ino(file), NULL, 0, buf, size);
}

static int cluster_sync(void *arg, lt_file_t file)
{
	return passthrough_sync_file(arg, source_dev, key_ino(file));
}

/* Connects to the cluster. After daemonizing: the client's threads would
 * not survive the fork. */
static int cluster_start(struct lockfs_config *cfg, struct locking *locking,
			 struct passthrough *pt, struct cluster **out)
{
	struct cluster_config cc = { .timeout_ms = cfg->cluster_timeout_ms };
	char msg[600];
	struct stat st;
	int r;

	if (cluster_parse_spec(cfg->cluster, &cc.spec, msg, sizeof(msg)) < 0) {
		log_err("%s", msg);
		return -EINVAL;
	}
	if (fstat(cfg->source_fd, &st) < 0)
		return -errno;
	source_dev = st.st_dev;
	r = cluster_new(out, &cc, &locking_cluster_ops, locking);
	if (r < 0)
		return r;
	locking_set_cluster(locking, *out, cluster_name, cluster_sync, pt);
	log_debug("cluster %s: session timeout %u ms", cfg->cluster, cfg->cluster_timeout_ms);
	return 0;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct cmdline cl;
	struct lockfs_config *cfg = &cl.cfg;
	struct locking *locking = NULL;
	struct cluster *cluster = NULL;
	struct passthrough *pt = NULL;
	struct fuse_session *se = NULL;
	char *fsname = NULL;
	bool handlers = false, mounted = false, started = false;
	int status = 1, r;

	log_init("lockfs", LOG_LVL_WARN, false);
	fuse_set_log_func(fuse_log_relay);

	cmdline_init(&cl);
	if (cmdline_parse(&args, &cl) < 0)
		goto out;
	if (cl.show_help) {
		cmdline_print_help();
		status = 0;
		goto out;
	}
	if (cl.show_version) {
		cmdline_print_version();
		status = 0;
		goto out;
	}
	if (cfg->debug || cl.fuse_debug)
		cfg->log_level = LOG_LVL_DEBUG;
	log_init("lockfs", (enum log_level)cfg->log_level, false);
	if (!cfg->source) {
		log_err("missing SOURCE argument (usage: lockfs SOURCE MOUNTPOINT [options], see --help)");
		goto out;
	}
	if (!cfg->mountpoint) {
		log_err("missing MOUNTPOINT argument (usage: lockfs SOURCE MOUNTPOINT [options], see --help)");
		goto out;
	}
	if (check_paths(cfg, &fsname) != 0)
		goto out;
	if (cfg->policy_file) {
		char err[512];

		if (policy_load(cfg->policy_file, &cfg->policy, err, sizeof(err)) != 0) {
			log_err("bad policy: %s", err);
			goto out;
		}
	}
	if (check_dev_fuse() != 0)
		goto out;
	if (cmdline_fuse_args(&args, &cl, fsname) != 0) {
		log_err("out of memory");
		goto out;
	}

	cmdline_size_descriptors(&cl);

	r = locking_new(&locking, cfg);
	if (r) {
		log_err("cannot set up locking: %s", strerror(-r));
		goto out;
	}
	r = passthrough_new(&pt, cfg, locking);
	if (r) {
		log_err("cannot set up the passthrough: %s", strerror(-r));
		goto out;
	}
	se = fuse_session_new(&args, &passthrough_ops, sizeof(passthrough_ops), pt);
	if (!se) {
		if (!fuse_errors_seen)
			log_err("cannot create the FUSE session");
		goto out;
	}
	passthrough_set_session(pt, se);
	if (fuse_set_signal_handlers(se) != 0) {
		log_err("cannot install signal handlers");
		goto out;
	}
	handlers = true;
	if (fuse_session_mount(se, cfg->mountpoint) != 0) {
		if (!fuse_errors_seen)
			log_err("cannot mount on '%s'", cfg->mountpoint);
		goto out;
	}
	mounted = true;
	passthrough_mounted(pt);
	log_debug("mounted %s on %s (lease %u ms, lock timeout %u ms, %s)",
		  fsname, cfg->mountpoint, cfg->lease_ms, cfg->lock_timeout_ms,
		  cfg->single_thread ? "single-threaded" : "multi-threaded");

	/* Only now: mount errors above still reach the terminal, and
	 * threads do not survive the fork, so locking_start() comes after. */
	if (fuse_daemonize(cfg->foreground) != 0) {
		log_err("cannot detach from the terminal");
		goto out;
	}
	if (!cfg->foreground)
		log_set_syslog(true);
	/* Keeps the daemon from pinning whatever directory it was started
	 * in; nothing is resolved relative to it any more. */
	if (chdir("/") != 0)
		log_warn("chdir /: %s", strerror(errno));

	if (cfg->cluster) {
		r = cluster_start(cfg, locking, pt, &cluster);
		if (r) {
			log_err("cannot join the cluster %s: %s", cfg->cluster, strerror(-r));
			goto out;
		}
	}
	r = locking_start(locking);
	if (r) {
		log_err("cannot start locking: %s", strerror(-r));
		goto out;
	}
	started = true;

	r = run_loop(se, cfg);
	if (r < 0)
		log_err("session ended with an error: %s", strerror(-r));
	else if (r > 0)
		log_debug("signal %d: unmounting", r);
	else
		log_debug("session ended (unmounted, or stopped by a signal)");
	status = r < 0 ? 1 : 0;

out:
	/* Unmount first so no new request arrives, then fail the parked ones,
	 * then let the session call the passthrough's destroy (which closes
	 * its files) before the passthrough and locking go away. Writes went
	 * straight to SOURCE, so nothing is left to flush. */
	if (mounted)
		fuse_session_unmount(se);
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (started)
		locking_stop(locking);
	/* Closing the ZooKeeper session drops this daemon's znodes at once.
	 * Its threads call into locking until cluster_free() returns; the
	 * handles the session's destroy closes below must not reach it. */
	if (cluster) {
		cluster_free(cluster);
		locking_set_cluster(locking, NULL, NULL, NULL, NULL);
	}
	if (se)
		fuse_session_destroy(se);
	if (pt)
		passthrough_free(pt);
	if (locking)
		locking_free(locking);
	free(fsname);
	free_config(cfg);
	fuse_opt_free_args(&args);
	return status;
}


/* The daemon's command line: lockfs's own options, parsed with fuse_opt
 * (see main.c for the rules of SOURCE and MOUNTPOINT).
 *
 * Options lockfs knows are taken out of the argument list; every other -o
 * option is left for libfuse's mount and session parsers, which refuse the
 * ones they do not know either. Because mount.fuse3 (and so /etc/fstab with
 * type fuse.lockfs) calls `lockfs SOURCE MOUNTPOINT -o OPTS`, the same
 * parser serves the command line and fstab. Each bad value is one line on
 * stderr naming the option and what it takes. */
#ifndef LOCKFS_OPTIONS_H
#define LOCKFS_OPTIONS_H

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <stdbool.h>

#include "config.h"

/* Everything the command line decides; main() owns it, single-threaded until
 * the session starts, read-only afterwards. */
struct cmdline {
	struct lockfs_config cfg;
	bool show_help;
	bool show_version;
	bool fuse_debug;
	bool have_fsname;
	bool have_subtype;
	bool have_fd_cache;
	unsigned nonopts;       /* positional arguments seen */
};

/* The defaults, before parsing. */
void cmdline_init(struct cmdline *cl);
/* Takes lockfs's options out of args into cl: 0, or -1 after saying why. */
int cmdline_parse(struct fuse_args *args, struct cmdline *cl);
/* Adds the options lockfs always gives libfuse unless the user chose
 * otherwise (subtype, fsname, debug). 0 or -1. */
int cmdline_fuse_args(struct fuse_args *args, const struct cmdline *cl, const char *fsname);
/* Raises the open file limit to its hard limit and sizes the descriptor
 * cache within it. */
void cmdline_size_descriptors(struct cmdline *cl);
void cmdline_print_help(void);
void cmdline_print_version(void);

#endif

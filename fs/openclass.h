/* What lock an open asks for: the first rule of docs/semantics.md ("What an
 * open takes") as pure logic, so the unit tests can check every row.
 *
 * Two steps, so that the caller only gathers the facts a decision needs:
 * openclass_kind() sorts an open by its flags alone; for a read in
 * exclusive mode the caller then learns whether the caller could modify
 * the file (a permission check on the source) before openclass_lock(). */
#ifndef LOCKFS_OPENCLASS_H
#define LOCKFS_OPENCLASS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "locktable.h"
#include "policy.h"

/* The kernel's __FMODE_EXEC: it travels in the open flags of the FUSE OPEN
 * request when a program is being executed (observed for execve of a file
 * in the mount; a plain open never carries it). */
#define OPENCLASS_FMODE_EXEC 0x20

enum open_kind {
	OPEN_NOLOCK, /* appends, executions, anything but a regular file */
	OPEN_READ,
	OPEN_WRITE,
};

/* `flags` as the open carries them, `create` for a CREATE request, `type`
 * the file's st_mode & S_IFMT. */
enum open_kind openclass_kind(int flags, bool create, mode_t type);

/* Whether a read in `mode` needs to know if its caller could modify the
 * file (only then is the permission check worth its system calls). */
bool openclass_needs_modify_check(enum open_kind kind, enum policy_mode mode);

struct open_lock {
	bool lock;             /* false: no lock at all */
	enum lt_class cls;
	unsigned flags;        /* enum lt_flags */
	uint64_t lease_ns;
};

/* The lock for an open of kind `kind` under a rule of `mode` with lease
 * `lease_ns`; `can_modify` says whether the caller could write the file or
 * rename over it (ignored unless openclass_needs_modify_check()). */
struct open_lock openclass_lock(enum open_kind kind, int flags, enum policy_mode mode,
				bool can_modify, uint64_t lease_ns);

#endif

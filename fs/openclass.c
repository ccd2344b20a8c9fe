/* What lock an open asks for (see openclass.h and docs/semantics.md). */
#include "openclass.h"

#include <fcntl.h>
#include <sys/stat.h>

enum open_kind openclass_kind(int flags, bool create, mode_t type)
{
	int acc = flags & O_ACCMODE;

	if (!S_ISREG(type))
		return OPEN_NOLOCK;
	if (flags & OPENCLASS_FMODE_EXEC)
		return OPEN_NOLOCK;     /* copies of a program run at once */
	if (acc == O_WRONLY && (flags & O_APPEND) && !(flags & O_TRUNC))
		return OPEN_NOLOCK;     /* appenders never wait */
	if (acc == O_RDONLY && !(flags & O_TRUNC) && !create)
		return OPEN_READ;
	return OPEN_WRITE;
}

bool openclass_needs_modify_check(enum open_kind kind, enum policy_mode mode)
{
	return kind == OPEN_READ && mode == POLICY_EXCLUSIVE;
}

struct open_lock openclass_lock(enum open_kind kind, int flags, enum policy_mode mode,
				bool can_modify, uint64_t lease_ns)
{
	struct open_lock l = { .lock = false };

	if (kind == OPEN_NOLOCK || mode == POLICY_NONE)
		return l;
	l.lock = true;
	if (kind == OPEN_WRITE) {
		l.cls = LT_EXCL;
		l.flags = LT_F_WRITE;
	} else if (mode == POLICY_READERS_WRITER || !can_modify) {
		/* Readers that share never make anyone wait for a lease. */
		l.cls = LT_SHARED;
	} else {
		/* May be followed by a write: the lease keeps the section. */
		l.cls = LT_UPDATE;
		l.lease_ns = lease_ns;
	}
	if (flags & O_NONBLOCK)
		l.flags |= LT_F_NONBLOCK;
	return l;
}

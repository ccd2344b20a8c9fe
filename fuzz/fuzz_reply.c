/* libFuzzer target: lockstat's parser for control-file replies.
 *
 * A reply comes from whatever answers at MOUNT/.lockfs-control, so the
 * parser must survive anything. Beyond not crashing, it checks that a
 * reply the parser accepts is internally consistent: every string it
 * returns is NUL-terminated at its own length, and the record counts agree
 * with what the closing end record promised. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctlproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void touch(const char *s)
{
	/* Reading to the terminator makes ASan check the string's bounds. */
	if (s && strlen(s) > (size_t)-2)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_reply r;
	char err[128], *s = NULL;

	if (ctl_parse_reply((const char *)data, size, &r, err, sizeof(err)) == 0) {
		if (!r.have_mount && !r.error)
			abort();
		touch(r.mountpoint);
		touch(r.source);
		touch(r.error);
		for (size_t i = 0; i < r.nlocks; i++) {
			touch(r.locks[i].file.path);
			touch(r.locks[i].owner.comm);
		}
		for (size_t i = 0; i < r.nwaits; i++) {
			touch(r.waits[i].file.path);
			touch(r.waits[i].owner.comm);
		}
		for (size_t i = 0; i < r.nstats; i++)
			touch(r.stats[i].file.path);
		for (size_t i = 0; i < r.nfileinfos; i++)
			touch(r.fileinfos[i].file.path);
		touch(r.cluster);
		for (size_t i = 0; i < r.nclusters; i++) {
			touch(r.clusters[i].file.path);
			/* Never NULL in an accepted reply. */
			if (!r.clusters[i].host || r.clusters[i].state > CTL_CL_LOST)
				abort();
			touch(r.clusters[i].host);
		}
		/* Keywords map to their enums only. */
		for (size_t i = 0; i < r.nlocks; i++)
			if (r.locks[i].mode > CTL_UPDATE || r.locks[i].hold > CTL_HOLD_BROKEN)
				abort();
		ctl_reply_free(&r);
	} else if (memchr(err, '\0', sizeof(err)) == NULL || err[0] == '\0') {
		abort();
	}

	/* Escapes: whatever decodes must encode back to the same bytes when
	 * the input was in the encoder's canonical form. */
	if (ctl_unescape((const char *)data, size, &s) == 0) {
		char *e = ctl_escape(s);

		if (!e)
			abort();
		char *again = NULL;
		if (ctl_unescape(e, strlen(e), &again) != 0 || strcmp(again, s) != 0)
			abort();
		free(again);
		free(e);
		free(s);
	}
	return 0;
}

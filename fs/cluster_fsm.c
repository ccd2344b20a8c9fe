/* Cluster mode's pure parts (see cluster.h): the option's syntax, the
 * names of files and znodes every host derives alike, and the state machine
 * of one cluster lock. No ZooKeeper, no system calls: the unit tests drive
 * them directly. */
#include "cluster.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cluster_parse_spec(const char *spec, struct cluster_spec *out, char *err, size_t errlen)
{
	const char *slash, *p, *end;
	size_t n = 0;

	memset(out, 0, sizeof(*out));
	if (!spec || !*spec) {
		snprintf(err, errlen, "cluster: empty; expected HOST:PORT[+HOST:PORT...]/PATH");
		return -EINVAL;
	}
	slash = strchr(spec, '/');
	if (!slash || slash == spec || slash[-1] == '+') {
		snprintf(err, errlen, "cluster=%s: expected HOST:PORT[+HOST:PORT...]/PATH", spec);
		return -EINVAL;
	}
	for (p = spec; p < slash; p = end + 1) {
		const char *colon, *port;
		char *pend;
		unsigned long v;

		end = memchr(p, '+', (size_t)(slash - p));
		if (!end)
			end = slash;
		colon = NULL;
		for (const char *q = p; q < end; q++)
			if (*q == ':')
				colon = q;
		if (!colon || colon == p || colon + 1 == end) {
			snprintf(err, errlen, "cluster=%s: server %.*s is not HOST:PORT", spec,
				 (int)(end - p), p);
			return -EINVAL;
		}
		for (const char *q = p; q < colon; q++)
			if (!isalnum((unsigned char)*q) && !strchr(".-_[]:", *q)) {
				snprintf(err, errlen, "cluster=%s: bad character in host %.*s",
					 spec, (int)(colon - p), p);
				return -EINVAL;
			}
		port = colon + 1;
		errno = 0;
		v = strtoul(port, &pend, 10);
		if (!isdigit((unsigned char)*port) || pend != end || errno || v == 0 || v > 65535) {
			snprintf(err, errlen, "cluster=%s: bad port in %.*s", spec, (int)(end - p), p);
			return -EINVAL;
		}
		if (n + (size_t)(end - p) + 2 > sizeof(out->servers)) {
			snprintf(err, errlen, "cluster=%s: server list too long", spec);
			return -EINVAL;
		}
		if (n)
			out->servers[n++] = ',';
		memcpy(out->servers + n, p, (size_t)(end - p));
		n += (size_t)(end - p);
		if (end == slash)
			break;
	}
	/* ZooKeeper paths: absolute, no empty, "." or ".." component, no
	 * trailing slash, no control characters. */
	if (strlen(slash) >= sizeof(out->path) || slash[1] == '\0') {
		snprintf(err, errlen, "cluster=%s: PATH must name a znode, at most %zu characters",
			 spec, sizeof(out->path) - 1);
		return -EINVAL;
	}
	for (p = slash; *p; p = end) {
		end = strchr(p + 1, '/');
		if (!end)
			end = p + strlen(p);
		size_t len = (size_t)(end - p - 1);
		if (len == 0 || (len == 1 && p[1] == '.') || (len == 2 && p[1] == '.' && p[2] == '.')) {
			snprintf(err, errlen, "cluster=%s: PATH has an empty, '.' or '..' component", spec);
			return -EINVAL;
		}
		for (const char *q = p + 1; q < end; q++)
			if ((unsigned char)*q <= ' ' || *q == 0x7f) {
				snprintf(err, errlen, "cluster=%s: PATH has a space or control character", spec);
				return -EINVAL;
			}
	}
	strcpy(out->path, slash);
	return 0;
}

int cluster_parse_timeout(const char *s, unsigned *ms)
{
	char *end;
	double v;

	if (!s || !*s || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !(v > 0) || v > 3600)
		return -EINVAL;
	*ms = (unsigned)(v * 1000 + 0.5);
	return *ms ? 0 : -EINVAL;
}

int cluster_file_name(uint64_t ino, const unsigned char *handle, size_t hlen,
		      char *buf, size_t size)
{
	int n = snprintf(buf, size, "%016" PRIx64, ino);

	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	if (hlen) {
		if ((size_t)n + 1 + 2 * hlen >= size)
			return -ENAMETOOLONG;
		buf[n++] = '-';
		for (size_t i = 0; i < hlen; i++, n += 2)
			snprintf(buf + n, 3, "%02x", handle[i]);
	}
	return 0;
}

long long cluster_seq(const char *child)
{
	const char *dash = strrchr(child, '-');
	long long v = 0;

	/* ZooKeeper appends a ten-digit sequence number to "lock-...-". */
	if (strncmp(child, "lock-", 5) != 0 || !dash || strlen(dash + 1) != 10)
		return -1;
	for (const char *p = dash + 1; *p; p++) {
		if (!isdigit((unsigned char)*p))
			return -1;
		v = v * 10 + (*p - '0');
	}
	return v;
}

unsigned cl_fsm_step(struct cl_fsm *f, enum cl_event e)
{
	switch (e) {
	case CE_WANT:
		if (f->st == CL_REMOTE) {
			f->st = CL_ACQUIRING;
			f->want = false;
			return CA_CREATE;
		}
		/* Held already, or asked for: nothing to do now. While it is
		 * being given up, ask again once it is gone (FIFO: behind the
		 * daemon that recalled it). */
		if (f->st == CL_RECALLED || f->st == CL_HANDING_OVER || f->st == CL_LOST)
			f->want = true;
		return 0;
	case CE_FIRST:
		if (f->st != CL_ACQUIRING)
			return 0;
		f->st = CL_HELD;
		return CA_GRANT;
	case CE_BEHIND:
		if (f->st != CL_HELD)
			return 0;
		f->st = CL_RECALLED;
		return CA_RECALL;
	case CE_IDLE:
		if (f->st != CL_RECALLED && f->st != CL_LOST)
			return 0;
		f->st = CL_HANDING_OVER;
		return CA_DELETE;
	case CE_DELETED:
		if (f->st == CL_HANDING_OVER) {
			f->st = CL_REMOTE;
			if (f->want)
				return cl_fsm_step(f, CE_WANT);
		} else if (f->st == CL_ACQUIRING) {
			/* Our queued znode vanished (the session died): ask
			 * again. */
			f->st = CL_REMOTE;
			return cl_fsm_step(f, CE_WANT);
		} else if (f->st == CL_HELD || f->st == CL_RECALLED) {
			return cl_fsm_step(f, CE_SUSPECT);
		}
		return 0;
	case CE_SUSPECT:
		/* A recalled lock is being given up already; its local side
		 * still answers CE_IDLE, and hearing "lost" twice is harmless. */
		if (f->st == CL_HELD || f->st == CL_RECALLED) {
			f->st = CL_LOST;
			return CA_LOST;
		}
		return 0;
	case CE_FAILED:
		if (f->st == CL_ACQUIRING)
			f->st = CL_REMOTE;
		return 0;
	}
	return 0;
}

const char *cl_state_name(enum cl_state s)
{
	static const char *const names[] = {
		[CL_REMOTE] = "remote", [CL_ACQUIRING] = "acquiring", [CL_HELD] = "held",
		[CL_RECALLED] = "recalled", [CL_HANDING_OVER] = "handing-over", [CL_LOST] = "lost",
	};
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

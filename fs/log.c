#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

/* Written once at start-up (and once more when daemonizing, before any
 * worker thread exists), read by every thread afterwards. */
static enum log_level log_level = LOG_LVL_WARN;
static bool log_to_syslog;
static const char *log_ident = "lockfs";

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void log_init(const char *ident, enum log_level level, bool use_syslog)
{
	log_ident = ident;
	log_level = level;
	log_set_syslog(use_syslog);
}

void log_set_syslog(bool use_syslog)
{
	if (use_syslog && !log_to_syslog)
		openlog(log_ident, LOG_PID, LOG_DAEMON);
	log_to_syslog = use_syslog;
}

bool log_enabled(enum log_level level)
{
	return level <= log_level;
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *log_level_name(enum log_level level)
{
	return (unsigned)level < sizeof(level_names) / sizeof(level_names[0])
		? level_names[level] : "?";
}

static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

	if (log_to_syslog) {
		vsyslog(prio[level], fmt, ap);
	} else {
		/* One fprintf per message keeps lines from different threads whole. */
		char line[1024];
		vsnprintf(line, sizeof(line), fmt, ap);
		fprintf(stderr, "%s: %s\n", log_ident, line);
	}
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void log_msg_limited(struct log_limit *ll, enum log_level level, const char *fmt, ...)
{
	struct timespec now;
	unsigned long left_out = 0;
	bool print;
	va_list ap;

	if (!log_enabled(level))
		return;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
	pthread_mutex_lock(&ll->mu);
	if ((uint64_t)now.tv_sec != ll->window) {
		ll->window = (uint64_t)now.tv_sec;
		ll->count = 0;
	}
	print = ll->count < LOG_LIMIT_PER_SEC;
	if (print) {
		ll->count++;
		left_out = ll->suppressed;
		ll->suppressed = 0;
	} else {
		ll->suppressed++;
	}
	pthread_mutex_unlock(&ll->mu);
	if (!print)
		return;
	if (left_out)
		log_msg(level, "(%lu more like the next line were suppressed)", left_out);
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

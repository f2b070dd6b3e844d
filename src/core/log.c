#include "core.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static sv_log_level g_level = SV_LOG_INFO;
static bool g_json = false;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

int sv_log_set_level_name(const char *name)
{
    for (int i = 0; i <= SV_LOG_OFF; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            g_level = (sv_log_level)i;
            return 0;
        }
    }
    return SV_EINVAL;
}

void sv_log_set_level(sv_log_level level) { g_level = level; }
void sv_log_set_json(bool json) { g_json = json; }
bool sv_log_enabled(sv_log_level level) { return level >= g_level && level < SV_LOG_OFF; }

/* The one JSON escaper (sv_buf_json_string), written to f. */
static void put_json_string(FILE *f, const char *s)
{
    sv_buf b = {0};
    if (sv_buf_json_string(&b, s, strlen(s)) == 0)
        fwrite(b.data, 1, b.len, f);
    else
        fputs("\"(out of memory)\"", f);
    sv_buf_free(&b);
}

void sv_log(sv_log_level level, const char *msg, const char *kvfmt, ...)
{
    if (!sv_log_enabled(level))
        return;
    char kv[2048] = "";
    if (kvfmt && *kvfmt) {
        va_list ap;
        va_start(ap, kvfmt);
        vsnprintf(kv, sizeof kv, kvfmt, ap);
        va_end(ap);
    }
    char ts[32];
    sv_format_time_ms(sv_now_ms(), ts, sizeof ts);
    pthread_mutex_lock(&g_lock);
    if (g_json) {
        fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level_names[level]);
        put_json_string(stderr, msg);
        if (kv[0]) {
            fputs(",\"fields\":", stderr);
            put_json_string(stderr, kv);
        }
        fputs("}\n", stderr);
    } else {
        fprintf(stderr, "ts=%s level=%s msg=", ts, level_names[level]);
        put_json_string(stderr, msg);
        if (kv[0])
            fprintf(stderr, " %s", kv);
        fputc('\n', stderr);
    }
    fflush(stderr);
    pthread_mutex_unlock(&g_lock);
}

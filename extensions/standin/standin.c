/*
 * layer-builder SANDBOX STAND-IN for the Sentry Lambda Extension. This is NOT Relay.
 *
 * `layer-builder release --sandbox` runs on machines without internet access, so the real
 * Relay binary cannot be downloaded there. This small program takes its place in sandbox
 * layers and does, in miniature, what Relay in proxy mode does for a Lambda function:
 *
 *  - it takes Relay's arguments (`run --mode=proxy --host=H --port=P --upstream-dsn=DSN
 *    --aws-runtime-api=...`; others are ignored);
 *  - it listens on H:P (default 127.0.0.1:3000) before registering, so the port is open by
 *    the time the runtime starts;
 *  - it registers with the Lambda Extensions API as `sentry-lambda-extension` for INVOKE and
 *    SHUTDOWN and polls for events until SHUTDOWN arrives;
 *  - meanwhile a child process accepts what the SDK sends (`POST /api/<project>/envelope/`
 *    or `.../store/`, sized or chunked) and forwards it, one request at a time, to the
 *    upstream named by the DSN (plain http only: an IPv4 address or localhost), adding
 *    `Via: 1.1 sentry-lambda-extension (layer-builder sandbox stand-in)` so the receiver can
 *    tell the event came through the extension. The SDK gets the upstream's status and body.
 *
 * Plain POSIX sockets and a minimal HTTP/1.1 client (one request per connection), so it can
 * be linked statically and runs on any Lambda runtime. Rebuild with ./build.sh.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXTENSION_NAME "sentry-lambda-extension"
#define LABEL "layer-builder SANDBOX STAND-IN for " EXTENSION_NAME " (not Relay)"
#define API_PREFIX "/2020-01-01/extension"
#define MAX_RESPONSE (1024 * 1024)
#define MAX_BODY (20 * 1024 * 1024)
#define VIA "Via: 1.1 " EXTENSION_NAME " (layer-builder sandbox stand-in)\r\n"

struct response {
    int status;
    char *headers; /* NUL-terminated header block, status line included */
    char *body;    /* NUL-terminated body */
    size_t body_len;
};

static struct sockaddr_in api_addr;
static char api_host[256];
static struct sockaddr_in upstream_addr;
static char upstream_host[256];
static int have_upstream;
static pid_t proxy_pid;

static void stop_proxy(void) {
    if (proxy_pid > 0) {
        kill(proxy_pid, SIGKILL);
        waitpid(proxy_pid, NULL, 0);
        proxy_pid = 0;
    }
}

static void on_sigterm(int sig) {
    (void)sig;
    /* Lambda sends SIGTERM when the environment is torn down without a SHUTDOWN event. */
    if (proxy_pid > 0) kill(proxy_pid, SIGKILL);
    _exit(0);
}

/* Parse "host:port" into addr (and the text into text). Only numeric IPv4 and "localhost"
 * are accepted: name resolution would pull the NSS machinery into a static binary. */
static int parse_hostport(const char *value, size_t len_value, struct sockaddr_in *addr,
                          char *text, size_t text_len) {
    char buf[256];
    char host[64];
    const char *colon;
    size_t len;
    long port;

    if (len_value >= sizeof(buf) || len_value >= text_len) return -1;
    memcpy(buf, value, len_value);
    buf[len_value] = '\0';
    colon = strrchr(buf, ':');
    if (colon == NULL) return -1;
    len = (size_t)(colon - buf);
    if (len == 0 || len >= sizeof(host)) return -1;
    memcpy(host, buf, len);
    host[len] = '\0';
    port = strtol(colon + 1, NULL, 10);
    if (port <= 0 || port > 65535) return -1;
    if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");

    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &addr->sin_addr) != 1) return -1;
    strcpy(text, buf);
    return 0;
}

/* The upstream of a DSN "http://key@host:port/project": host and port. */
static int parse_dsn(const char *dsn) {
    const char *rest, *at, *slash;
    if (strncmp(dsn, "http://", 7) != 0) return -1; /* no TLS in the stand-in */
    rest = dsn + 7;
    slash = strchr(rest, '/');
    if (slash == NULL) slash = rest + strlen(rest);
    at = memchr(rest, '@', (size_t)(slash - rest));
    if (at != NULL) rest = at + 1;
    return parse_hostport(rest, (size_t)(slash - rest), &upstream_addr, upstream_host,
                          sizeof(upstream_host));
}

static int send_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = send(fd, data, len, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Case-insensitive search for a header line; copies its value into out. */
static int find_header(const char *headers, const char *name, char *out, size_t out_len) {
    size_t name_len = strlen(name);
    const char *line = strstr(headers, "\r\n");

    while (line != NULL && line[2] != '\0') {
        line += 2;
        if (strncasecmp(line, name, name_len) == 0 && line[name_len] == ':') {
            const char *value = line + name_len + 1;
            const char *end = strstr(value, "\r\n");
            size_t len;
            while (*value == ' ' || *value == '\t') value++;
            len = end ? (size_t)(end - value) : strlen(value);
            if (len >= out_len) return -1;
            memcpy(out, value, len);
            out[len] = '\0';
            return 0;
        }
        line = strstr(line, "\r\n");
    }
    return -1;
}

/* One request on a fresh connection to addr. Reads the whole response: Content-Length bytes
 * of body when the header is present, else until the server closes the connection. */
static int exchange(const struct sockaddr_in *addr, const char *head, size_t head_len,
                    const char *body, size_t body_len, struct response *resp) {
    char value[32];
    char *buf = malloc(MAX_RESPONSE + 1);
    size_t used = 0;
    char *sep = NULL;
    long want = -1;
    int fd;

    if (buf == NULL) return -1;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) goto fail_buf;
    if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0) goto fail_fd;
    if (send_all(fd, head, head_len) < 0) goto fail_fd;
    if (body_len && send_all(fd, body, body_len) < 0) goto fail_fd;

    for (;;) {
        ssize_t got;
        if (sep != NULL && want >= 0 && used >= (size_t)(sep + 4 - buf) + (size_t)want) break;
        if (used == MAX_RESPONSE) goto fail_fd;
        got = recv(fd, buf + used, MAX_RESPONSE - used, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) goto fail_fd;
        if (got == 0) break;
        used += (size_t)got;
        buf[used] = '\0';
        if (sep == NULL && (sep = strstr(buf, "\r\n\r\n")) != NULL) {
            *sep = '\0';
            if (find_header(buf, "Content-Length", value, sizeof(value)) == 0)
                want = strtol(value, NULL, 10);
            *sep = '\r';
        }
    }
    close(fd);
    buf[used] = '\0';
    if (sep == NULL || sscanf(buf, "HTTP/%*d.%*d %d", &resp->status) != 1) {
        free(buf);
        return -1;
    }
    *sep = '\0';
    resp->headers = buf;
    resp->body = sep + 4;
    resp->body_len = used - (size_t)(sep + 4 - buf);
    return 0;

fail_fd:
    close(fd);
fail_buf:
    free(buf);
    return -1;
}

/* A request to the Extensions API. */
static int request(const char *method, const char *path, const char *extra_headers,
                   const char *body, struct response *resp) {
    char head[1024];
    size_t body_len = body ? strlen(body) : 0;
    int n = snprintf(head, sizeof(head),
                     "%s %s%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s"
                     "Content-Length: %zu\r\n\r\n",
                     method, API_PREFIX, path, api_host, extra_headers, body_len);
    if (n < 0 || (size_t)n >= sizeof(head)) return -1;
    return exchange(&api_addr, head, (size_t)n, body, body_len, resp);
}

/* ---- the proxy: what the SDK sends, forwarded upstream ---------------------------------- */

static void reply(int fd, int status, const char *body, size_t len) {
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, status < 400 ? "OK" : "Error", len);
    if (n > 0 && (size_t)n < sizeof(head) && send_all(fd, head, (size_t)n) == 0)
        send_all(fd, body, len);
}

/* Read until the buffer holds at least `need` bytes (or the peer closes); -1 on error. */
static int fill(int fd, char *buf, size_t *used, size_t need, size_t cap) {
    while (*used < need) {
        ssize_t got;
        if (*used == cap) return -1;
        got = recv(fd, buf + *used, cap - *used, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return -1;
        *used += (size_t)got;
    }
    return 0;
}

/* Decode a chunked body in place (data .. data+*len); -1 when it is malformed or cut. */
static int read_chunked(int fd, char *buf, size_t start, size_t *used, size_t cap,
                        size_t *out_len) {
    size_t pos = start, out = start;
    for (;;) {
        char *eol;
        unsigned long size;
        buf[*used] = '\0';
        while ((eol = strstr(buf + pos, "\r\n")) == NULL) {
            if (fill(fd, buf, used, *used + 1, cap) < 0) return -1;
            buf[*used] = '\0';
        }
        size = strtoul(buf + pos, NULL, 16);
        pos = (size_t)(eol + 2 - buf);
        if (size == 0) break;
        if (size > cap || fill(fd, buf, used, pos + size + 2, cap) < 0) return -1;
        memmove(buf + out, buf + pos, size);
        out += size;
        pos += size + 2;
    }
    *out_len = out - start;
    return 0;
}

static void forward(int fd) {
    static const char *copied[] = {"Content-Type", "Content-Encoding", "X-Sentry-Auth",
                                   "User-Agent"};
    char *buf = malloc(MAX_BODY + 1);
    char method[16], path[512], value[1024], head[4096];
    size_t used = 0, start, body_len = 0;
    char *sep = NULL;
    struct response resp;
    int n;
    unsigned i;

    if (buf == NULL) return;
    while (sep == NULL) {
        if (fill(fd, buf, &used, used + 1, 65536) < 0) goto done;
        buf[used] = '\0';
        sep = strstr(buf, "\r\n\r\n");
    }
    *sep = '\0';
    start = (size_t)(sep + 4 - buf);
    if (sscanf(buf, "%15s %511s", method, path) != 2) goto done;
    if (find_header(buf, "Transfer-Encoding", value, sizeof(value)) == 0 &&
        strstr(value, "chunked") != NULL) {
        if (read_chunked(fd, buf, start, &used, MAX_BODY, &body_len) < 0) goto done;
    } else if (find_header(buf, "Content-Length", value, sizeof(value)) == 0) {
        body_len = (size_t)strtoul(value, NULL, 10);
        if (body_len > MAX_BODY - start || fill(fd, buf, &used, start + body_len, MAX_BODY) < 0)
            goto done;
    }
    if (!have_upstream) {
        const char *msg = "{\"detail\":\"the stand-in has no http:// upstream DSN\"}";
        reply(fd, 502, msg, strlen(msg));
        printf("stand-in: refused %s %s: no http:// upstream DSN\n", method, path);
        goto done;
    }
    n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n" VIA
                 "Content-Length: %zu\r\n", method, path, upstream_host, body_len);
    for (i = 0; i < sizeof(copied) / sizeof(copied[0]); i++) {
        if (n > 0 && (size_t)n < sizeof(head) &&
            find_header(buf, copied[i], value, sizeof(value)) == 0)
            n += snprintf(head + n, sizeof(head) - (size_t)n, "%s: %s\r\n", copied[i], value);
    }
    if (n < 0 || (size_t)n + 2 >= sizeof(head)) goto done;
    n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
    if (exchange(&upstream_addr, head, (size_t)n, buf + start, body_len, &resp) != 0) {
        const char *msg = "{\"detail\":\"upstream unreachable\"}";
        reply(fd, 502, msg, strlen(msg));
        printf("stand-in: could not forward %s %s to %s\n", method, path, upstream_host);
        goto done;
    }
    reply(fd, resp.status, resp.body, resp.body_len);
    printf("stand-in: forwarded %s %s (%zu bytes) to %s: HTTP %d\n", method, path, body_len,
           upstream_host, resp.status);
    free(resp.headers);
done:
    free(buf);
}

static void serve(int listener) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the extension process */
    signal(SIGTERM, SIG_DFL);
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR) continue;
            _exit(1);
        }
        forward(fd);
        close(fd);
    }
}

static int listen_on(const char *host, const char *port) {
    char spec[128];
    struct sockaddr_in addr;
    char text[128];
    int one = 1, fd;
    snprintf(spec, sizeof(spec), "%s:%s", host, port);
    if (parse_hostport(spec, strlen(spec), &addr, text, sizeof(text)) != 0) return -1;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 16) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The value of `--name=value` or `--name value` at argv[*i], or NULL. */
static const char *option(int argc, char **argv, int *i, const char *name) {
    size_t len = strlen(name);
    if (strncmp(argv[*i], name, len) != 0) return NULL;
    if (argv[*i][len] == '=') return argv[*i] + len + 1;
    if (argv[*i][len] == '\0' && *i + 1 < argc) return argv[++*i];
    return NULL;
}

int main(int argc, char **argv) {
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    const char *host = "127.0.0.1", *port = "3000", *dsn = NULL, *v;
    char id[256];
    char id_header[300];
    struct response resp;
    int i, listener;

    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("%s; invoked as:", LABEL);
    for (i = 0; i < argc; i++) printf(" %s", argv[i]);
    printf("\n");
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "--help") == 0) return 0;
        if ((v = option(argc, argv, &i, "--host")) != NULL) host = v;
        else if ((v = option(argc, argv, &i, "--port")) != NULL) port = v;
        else if ((v = option(argc, argv, &i, "--upstream-dsn")) != NULL) dsn = v;
    }
    signal(SIGTERM, on_sigterm);
    signal(SIGPIPE, SIG_IGN);

    if (api == NULL || parse_hostport(api, strlen(api), &api_addr, api_host,
                                      sizeof(api_host)) != 0) {
        fprintf(stderr, "stand-in: AWS_LAMBDA_RUNTIME_API is unset or not IPv4:port: %s\n",
                api ? api : "(unset)");
        return 1;
    }
    have_upstream = dsn != NULL && parse_dsn(dsn) == 0;
    if (dsn != NULL && !have_upstream)
        fprintf(stderr, "stand-in: the upstream DSN is not http://...@IPv4:port/...; "
                        "events will be refused\n");
    listener = listen_on(host, port);
    if (listener < 0) {
        fprintf(stderr, "stand-in: cannot listen on %s:%s: %s\n", host, port, strerror(errno));
        return 1;
    }
    proxy_pid = fork();
    if (proxy_pid < 0) {
        fprintf(stderr, "stand-in: fork failed: %s\n", strerror(errno));
        return 1;
    }
    if (proxy_pid == 0) serve(listener);
    close(listener);
    printf("stand-in: listening on %s:%s for the SDK, forwarding to %s\n", host, port,
           have_upstream ? upstream_host : "(nothing)");

    if (request("POST", "/register",
                "Lambda-Extension-Name: " EXTENSION_NAME "\r\n"
                "Content-Type: application/json\r\n",
                "{\"events\":[\"INVOKE\",\"SHUTDOWN\"]}", &resp) != 0) {
        fprintf(stderr, "stand-in: cannot reach the Extensions API at %s\n", api);
        stop_proxy();
        return 1;
    }
    if (resp.status != 200 ||
        find_header(resp.headers, "Lambda-Extension-Identifier", id, sizeof(id)) != 0) {
        fprintf(stderr, "stand-in: register failed with HTTP %d\n", resp.status);
        stop_proxy();
        return 1;
    }
    free(resp.headers);
    printf("stand-in: registered for INVOKE and SHUTDOWN\n");
    snprintf(id_header, sizeof(id_header), "Lambda-Extension-Identifier: %s\r\n", id);

    for (;;) {
        int shutdown;
        if (request("GET", "/event/next", id_header, NULL, &resp) != 0) {
            fprintf(stderr, "stand-in: event/next failed: connection error\n");
            stop_proxy();
            return 1;
        }
        if (resp.status != 200) {
            fprintf(stderr, "stand-in: event/next failed with HTTP %d\n", resp.status);
            stop_proxy();
            return 1;
        }
        shutdown = strstr(resp.body, "\"SHUTDOWN\"") != NULL;
        free(resp.headers);
        if (shutdown) {
            stop_proxy();
            printf("stand-in: SHUTDOWN received, exiting\n");
            return 0;
        }
        printf("stand-in: INVOKE received\n");
    }
}

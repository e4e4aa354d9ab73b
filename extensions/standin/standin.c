/*
 * layer-builder SANDBOX STAND-IN for the Sentry Lambda Extension. This is NOT Relay.
 *
 * `layer-builder release --sandbox` runs on machines without internet access, so the real
 * Relay binary cannot be downloaded there. This small program takes its place in sandbox
 * layers: it accepts any arguments (the launcher runs it as `relay run --mode=proxy ...`),
 * registers with the Lambda Extensions API as `sentry-lambda-extension` for INVOKE and
 * SHUTDOWN events, and polls for events until SHUTDOWN arrives. It forwards nothing to Sentry.
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
#include <sys/socket.h>
#include <unistd.h>

#define EXTENSION_NAME "sentry-lambda-extension"
#define LABEL "layer-builder SANDBOX STAND-IN for " EXTENSION_NAME " (not Relay)"
#define API_PREFIX "/2020-01-01/extension"
#define MAX_RESPONSE (1024 * 1024)

struct response {
    int status;
    char *headers; /* NUL-terminated header block, status line included */
    char *body;    /* NUL-terminated body */
};

static struct sockaddr_in api_addr;
static char api_host[256];

static void on_sigterm(int sig) {
    (void)sig;
    /* Lambda sends SIGTERM when the environment is torn down without a SHUTDOWN event. */
    _exit(0);
}

/* Parse AWS_LAMBDA_RUNTIME_API ("127.0.0.1:9001"). Only numeric IPv4 and "localhost" are
 * accepted: name resolution would pull the NSS machinery into a static binary. */
static int parse_api(const char *value) {
    const char *colon = strrchr(value, ':');
    char host[64];
    size_t len;
    long port;

    if (colon == NULL || strlen(value) >= sizeof(api_host)) return -1;
    len = (size_t)(colon - value);
    if (len == 0 || len >= sizeof(host)) return -1;
    memcpy(host, value, len);
    host[len] = '\0';
    port = strtol(colon + 1, NULL, 10);
    if (port <= 0 || port > 65535) return -1;
    if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");

    memset(&api_addr, 0, sizeof(api_addr));
    api_addr.sin_family = AF_INET;
    api_addr.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &api_addr.sin_addr) != 1) return -1;
    strcpy(api_host, value);
    return 0;
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

/* One request on a fresh connection. Reads the whole response: Content-Length bytes of body
 * when the header is present, else until the server closes the connection. */
static int request(const char *method, const char *path, const char *extra_headers,
                   const char *body, struct response *resp) {
    char head[1024];
    char value[32];
    char *buf = malloc(MAX_RESPONSE + 1);
    size_t used = 0;
    char *sep = NULL;
    long want = -1;
    int fd, n;

    if (buf == NULL) return -1;
    n = snprintf(head, sizeof(head),
                 "%s %s%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s"
                 "Content-Length: %zu\r\n\r\n",
                 method, API_PREFIX, path, api_host, extra_headers, body ? strlen(body) : 0);
    if (n < 0 || (size_t)n >= sizeof(head)) goto fail_buf;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) goto fail_buf;
    if (connect(fd, (struct sockaddr *)&api_addr, sizeof(api_addr)) < 0) goto fail_fd;
    if (send_all(fd, head, (size_t)n) < 0) goto fail_fd;
    if (body && send_all(fd, body, strlen(body)) < 0) goto fail_fd;

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
    return 0;

fail_fd:
    close(fd);
fail_buf:
    free(buf);
    return -1;
}

int main(int argc, char **argv) {
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    char id[256];
    char id_header[300];
    struct response resp;
    int i;

    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("%s; invoked as:", LABEL);
    for (i = 0; i < argc; i++) printf(" %s", argv[i]);
    printf("\n");
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "--help") == 0) return 0;
    }
    signal(SIGTERM, on_sigterm);
    signal(SIGPIPE, SIG_IGN);

    if (api == NULL || parse_api(api) != 0) {
        fprintf(stderr, "stand-in: AWS_LAMBDA_RUNTIME_API is unset or not IPv4:port: %s\n",
                api ? api : "(unset)");
        return 1;
    }
    if (request("POST", "/register",
                "Lambda-Extension-Name: " EXTENSION_NAME "\r\n"
                "Content-Type: application/json\r\n",
                "{\"events\":[\"INVOKE\",\"SHUTDOWN\"]}", &resp) != 0) {
        fprintf(stderr, "stand-in: cannot reach the Extensions API at %s\n", api);
        return 1;
    }
    if (resp.status != 200 ||
        find_header(resp.headers, "Lambda-Extension-Identifier", id, sizeof(id)) != 0) {
        fprintf(stderr, "stand-in: register failed with HTTP %d\n", resp.status);
        return 1;
    }
    free(resp.headers);
    printf("stand-in: registered for INVOKE and SHUTDOWN\n");
    snprintf(id_header, sizeof(id_header), "Lambda-Extension-Identifier: %s\r\n", id);

    for (;;) {
        int shutdown;
        if (request("GET", "/event/next", id_header, NULL, &resp) != 0) {
            fprintf(stderr, "stand-in: event/next failed: connection error\n");
            return 1;
        }
        if (resp.status != 200) {
            fprintf(stderr, "stand-in: event/next failed with HTTP %d\n", resp.status);
            return 1;
        }
        shutdown = strstr(resp.body, "\"SHUTDOWN\"") != NULL;
        free(resp.headers);
        if (shutdown) {
            printf("stand-in: SHUTDOWN received, exiting\n");
            return 0;
        }
        printf("stand-in: INVOKE received (nothing is forwarded to Sentry)\n");
    }
}

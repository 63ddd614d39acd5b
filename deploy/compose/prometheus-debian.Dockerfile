# Prometheus from Debian's package, for sites (and the tests) where prom/prometheus cannot be pulled:
#   docker build -f deploy/compose/prometheus-debian.Dockerfile --build-arg BASE_IMAGE=<debian image> -t gossip-prometheus:debian deploy/compose
# Same entrypoint, paths and arguments as the official image (/bin/prometheus, /etc/prometheus/prometheus.yml,
# data in /prometheus, a non-root user), so docker-compose.yml's `command:` fits both.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN set -eu; \
    apt-get update -qq; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /var/log/apt /var/log/dpkg.log; \
    mkdir -p /prometheus; \
    chown prometheus:prometheus /prometheus
USER prometheus
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]

# ceasefire-monitor: `monitor run` as a non-root user, the database on a volume.
#
# Two stages: the first compiles the matcher's hot modules with mypyc (setup.py) into a wheel,
# with a C compiler; the second installs that wheel into a slim image without one.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY monitor ./monitor
# The wheel of the monitor alone (its dependencies come from PyPI in the next stage).
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${BASE}
RUN useradd --create-home --uid 10001 monitor
WORKDIR /app
COPY --from=build /wheels /wheels
# The wheel's dependencies come from PyPI here, psycopg (with its bundled libpq) and its pool
# among them: MONITOR_DB=postgresql://... works in the image (compose.yaml). Fails the build
# when the matcher did not compile (the image is meant to run the fast build) or psycopg is missing.
RUN pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels \
    && python -c "import monitor.match as m, sys; sys.exit(0 if m.__file__.endswith('.so') else 'not compiled: ' + m.__file__)" \
    && python -c "import psycopg, psycopg_pool; print('psycopg', psycopg.__version__, 'libpq', psycopg.pq.version())" \
    && mkdir -p /data && chown monitor:monitor /data
# No config is copied: the packaged default (with its models) is used unless one is mounted at
# /app/config/monitor.toml or named by MONITOR_CONFIG.

USER monitor
ENV MONITOR_DB=/data/monitor.db
VOLUME ["/data"]
# Healthy while the monitor polls. With [web] listen in the config, `monitor health` asks the
# desk's /readyz on the loopback (the database answers, no feed overdue by two intervals, the
# outbox not stuck); without it, some feed was fetched in the last 15 minutes.
HEALTHCHECK --interval=1m --timeout=10s --start-period=2m --retries=3 \
    CMD ["monitor", "health", "--max-age", "15m"]
ENTRYPOINT ["monitor"]
CMD ["run"]

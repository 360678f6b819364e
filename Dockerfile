# ceasefire-monitor: `monitor run` as a non-root user, the database on a volume.
FROM python:3.11-slim

RUN useradd --create-home --uid 10001 monitor
WORKDIR /app
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY config ./config
# Installed the way the README says.
RUN pip install --no-cache-dir . \
    && mkdir -p /data && chown monitor:monitor /data

USER monitor
ENV MONITOR_DB=/data/monitor.db
VOLUME ["/data"]
ENTRYPOINT ["monitor"]
CMD ["run"]

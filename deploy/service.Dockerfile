# The hotline service (one instance per platform).
FROM python:3.11-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends espeak-ng sox \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY telephony telephony
COPY ivr ivr
COPY routing routing
COPY asterisk-config asterisk-config
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT ["hotline"]

#!/usr/bin/env bash
# Installs and starts the loopback services tracewire's broker tests talk to, on a fresh Debian
# machine (as root). On the project machines they are already running; `check` says which are up.
#
#   bash scripts/services.sh check     # report which services answer on 127.0.0.1
#   bash scripts/services.sh install   # apt-get install them
#   bash scripts/services.sh start     # start any that is not answering
set -euo pipefail

services=(
    "redis 6379"
    "rabbitmq 5672"
    "nats 4222"
    "mosquitto 1883"
    "postgresql 5432"
    "mariadb 3306"
)

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

check() {
    local missing=0
    for s in "${services[@]}"; do
        set -- $s
        if up "$2"; then echo "up      $1 (127.0.0.1:$2)"; else echo "DOWN    $1 (127.0.0.1:$2)"; missing=1; fi
    done
    return $missing
}

install() {
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        redis-server rabbitmq-server nats-server mosquitto postgresql mariadb-server
}

start() {
    up 6379 || redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
    up 5672 || rabbitmq-server -detached
    up 4222 || start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
        -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
    up 1883 || mosquitto -d -c /etc/mosquitto/mosquitto.conf
    up 5432 || pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
    up 3306 || start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    for _ in $(seq 1 30); do check >/dev/null && break; sleep 1; done
    check
}

case "${1:-check}" in
    check) check ;;
    install) install ;;
    start) start ;;
    *) echo "usage: $0 check|install|start" >&2; exit 2 ;;
esac

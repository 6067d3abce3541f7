#!/usr/bin/env bash
# Makes a private CA for the nginx kit and a server certificate signed by it (ECDSA P-256, openssl).
#   deploy/nginx/make-ca.sh DIR NAME [NAME|IP ...]
# DIR gets ca.pem (give it to clients: they verify nginx with it), ca.key (keep it offline), server.pem and
# server.key (nginx's ssl_certificate and ssl_certificate_key). The first NAME is the certificate's subject; every
# NAME or IP is a subject alternative name. An existing CA in DIR is reused, so running it again renews only the
# server certificate. Use your organisation's CA instead where you have one.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 DIR NAME [NAME|IP ...]" >&2; exit 2; }
dir=$1; shift
command -v openssl >/dev/null || { echo "make-ca.sh: openssl is required" >&2; exit 1; }
umask 077
mkdir -p "$dir"
if [ ! -s "$dir/ca.key" ] || [ ! -s "$dir/ca.pem" ]; then
  openssl ecparam -name prime256v1 -genkey -noout -out "$dir/ca.key"
  openssl req -x509 -new -key "$dir/ca.key" -sha256 -days 3650 -subj "/CN=qdrant nginx kit CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$dir/ca.pem"
fi
san=""
for n in "$@"; do
  if [[ $n =~ ^[0-9.]+$ || $n == *:* ]]; then san+="IP:$n,"; else san+="DNS:$n,"; fi
done
openssl ecparam -name prime256v1 -genkey -noout -out "$dir/server.key"
openssl req -new -key "$dir/server.key" -subj "/CN=$1" -out "$dir/server.csr"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -sha256 -days 397 \
  -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n' "${san%,}") \
  -out "$dir/server.pem" 2>/dev/null
rm -f "$dir/server.csr"
chmod 644 "$dir/ca.pem" "$dir/server.pem"
echo "make-ca.sh: $dir/server.pem for $* signed by $dir/ca.pem" >&2

# Guest script of capture_ipvs.rs: programs IPVS with ipvsadm (services of every scheduler,
# flag and forwarding kind, IPv4 and IPv6), sends traffic through one VIP, and prints
# ipvsadm's save and list formats plus the netlink messages of chosen ipvsadm calls (strace
# hex dumps). Runs inside the lab::vm guest only; addresses from the project's plan.

# st NAME CMD...: run CMD under strace, print the dump as block strace:NAME
st() {
  _n=$1; shift
  strace -o /tmp/st -e trace=sendmsg,recvmsg -e write=all -e read=all "$@" >/tmp/st.out 2>&1
  _rc=$?
  echo "@@BEGIN strace:$_n"; cat /tmp/st; echo "@@END strace:$_n rc=$_rc"
  sed 's/^/  | /' /tmp/st.out
}
# quiet CMD...: run CMD, report failures
quiet() { "$@" >/tmp/q.out 2>&1 || { echo "@@RESULT setup-failed=$*"; cat /tmp/q.out; }; }

block version ipvsadm -v

# VIPs on a dummy device, kube-proxy style; two backends in a netns behind a veth
quiet ip link add kube-ipvs0 type dummy
quiet ip link set kube-ipvs0 up
for v in 10 11 12 13 14 15 16 17 18 19 20 21 22; do quiet ip addr add 198.19.0.$v/32 dev kube-ipvs0; done
quiet ip -6 addr add 2001:db8:ff::10/128 dev kube-ipvs0 nodad
quiet ip netns add be
quiet ip link add vh type veth peer name vb netns be
quiet ip addr add 198.18.64.1/24 dev vh
quiet ip -6 addr add 2001:db8:64:1::1/64 dev vh nodad
quiet ip link set vh up
quiet ip -n be link set lo up
quiet ip -n be addr add 198.18.64.2/24 dev vb
quiet ip -n be addr add 198.18.64.3/24 dev vb
quiet ip -n be -6 addr add 2001:db8:64:1::2/64 dev vb nodad
quiet ip -n be link set vb up
quiet ip -n be route add default via 198.18.64.1
quiet ip -n be -6 route add default via 2001:db8:64:1::1
quiet ip route add 198.18.65.0/24 via 198.18.64.2
echo 1 > /proc/sys/net/ipv4/vs/conntrack
mkdir -p /www && echo "backend" > /www/index.html
quiet ip netns exec be busybox httpd -p 8080 -h /www

# services and real servers of every kind
st svc-add-tcp-rr ipvsadm -A -t 198.19.0.10:80 -s rr
st dest-add-masq ipvsadm -a -t 198.19.0.10:80 -r 198.18.64.2:8080 -m -w 1
quiet ipvsadm -a -t 198.19.0.10:80 -r 198.18.64.3:8080 -m -w 1
st svc-add-persistent ipvsadm -A -t 198.19.0.11:443 -s wrr -p 10800
quiet ipvsadm -a -t 198.19.0.11:443 -r 198.18.64.2:8443 -m -w 3
quiet ipvsadm -a -t 198.19.0.11:443 -r 198.18.64.3:8443 -m -w 0
st svc-add-udp-sh-flags ipvsadm -A -u 198.19.0.12:53 -s sh -b sh-fallback,sh-port
quiet ipvsadm -a -u 198.19.0.12:53 -r 198.18.64.2:5353 -m
quiet ipvsadm -a -u 198.19.0.12:53 -r 198.18.64.3:5353 -m -w 2
quiet ipvsadm -A -t 198.19.0.13:80 -s mh -b mh-port
st dest-add-route ipvsadm -a -t 198.19.0.13:80 -r 198.18.64.4 -g -w 2
st dest-add-tunnel-gue ipvsadm -a -t 198.19.0.13:80 -r 198.18.65.2 -i --tun-type gue --tun-port 6080 --tun-csum -w 1
quiet ipvsadm -a -t 198.19.0.13:80 -r 198.18.65.3 -i
quiet ipvsadm -a -t 198.19.0.13:80 -r 198.18.65.4 -i --tun-type gre -w 1
quiet ipvsadm -a -t 198.19.0.13:80 -r 198.18.65.5 -i --tun-type gue --tun-port 6081 --tun-remcsum -w 1
quiet ipvsadm -a -t 198.19.0.13:80 -r 198.18.65.6 -i --tun-type gre --tun-nocsum -w 1
st svc-add-sctp ipvsadm -A --sctp-service 198.19.0.14:9000 -s lc
st dest-add-thresholds ipvsadm -a --sctp-service 198.19.0.14:9000 -r 198.18.64.2:9000 -m -x 100 -y 10
st svc-add-fwmark ipvsadm -A -f 100 -s wlc -p 300 -M 255.255.255.0
quiet ipvsadm -a -f 100 -r 198.18.64.2 -m
st svc-add-udp-ops ipvsadm -A -u 198.19.0.15:5353 -s nq -o
quiet ipvsadm -a -u 198.19.0.15:5353 -r 198.18.64.3:5353 -m
st svc-add-pe-sip ipvsadm -A -u 198.19.0.16:5060 -s rr -p 60 --pe sip
quiet ipvsadm -a -u 198.19.0.16:5060 -r 198.18.64.2:5060 -m
st svc-add-all-flags ipvsadm -A -u 198.19.0.21:5060 -s sh -p 120 -M 255.255.0.0 --pe sip -o -b sh-fallback
quiet ipvsadm -a -u 198.19.0.21:5060 -r 198.18.64.3:5060 -m -w 1
quiet ipvsadm -A -t 198.19.0.22:80 -s wlc -b flag-1,flag-3
quiet ipvsadm -A -t 198.19.0.17:80 -s dh
quiet ipvsadm -a -t 198.19.0.17:80 -r 198.18.64.2:8080 -m
quiet ipvsadm -A -t 198.19.0.18:80 -s ovf
quiet ipvsadm -a -t 198.19.0.18:80 -r 198.18.64.2:8080 -m -w 4
quiet ipvsadm -A -t 198.19.0.19:80 -s lblc
quiet ipvsadm -A -t 198.19.0.20:80 -s lblcr
st svc-add-v6 ipvsadm -A -t [2001:db8:ff::10]:80 -s sed -p 60 -M 64
st dest-add-v6 ipvsadm -a -t [2001:db8:ff::10]:80 -r [2001:db8:64:1::2]:8080 -m
st svc-add-fwmark-v6 ipvsadm -A -f 200 -6 -s fo
quiet ipvsadm -a -f 200 -6 -r 2001:db8:64:1::2 -m -w 7

# edits
st svc-edit ipvsadm -E -t 198.19.0.17:80 -s dh -p 30
st dest-edit ipvsadm -e -t 198.19.0.11:443 -r 198.18.64.2:8443 -m -w 5
st svc-add-exists ipvsadm -A -t 198.19.0.10:80 -s rr

# traffic through 198.19.0.10:80 (round robin over both backends) and [2001:db8:ff::10]:80
for i in 1 2 3 4; do result "get-$i" "$(http_get 198.19.0.10 80 /index.html | tail -1)"; done
result get-v6 "$(http_get 2001:db8:ff::10 80 /index.html | tail -1)"

# what ipvsadm shows
block save ipvsadm -Sn
block list ipvsadm -Ln
block stats ipvsadm -Ln --stats
block stats-exact ipvsadm -Ln --stats --exact
block rate ipvsadm -Ln --rate
block thresholds ipvsadm -Ln --thresholds
block persistent-conn ipvsadm -Ln --persistent-conn
block tun-info ipvsadm -Ln --tun-info
block timeout ipvsadm -Ln --timeout

# netlink of the reads
st list ipvsadm -Ln
st list-one ipvsadm -Ln -t 198.19.0.10:80
st get-config ipvsadm -L --timeout
st set-config ipvsadm --set 900 120 300
st get-daemon ipvsadm -L --daemon

# restore what -Sn printed: the same -Sn comes back
ipvsadm -Sn > /tmp/saved
quiet ipvsadm -C
quiet ipvsadm -R < /tmp/saved
block save-restored ipvsadm -Sn

# removals
st dest-del ipvsadm -d -t 198.19.0.10:80 -r 198.18.64.3:8080
st svc-del ipvsadm -D -u 198.19.0.15:5353
st zero ipvsadm -Z
st flush ipvsadm -C

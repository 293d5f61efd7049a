#!/usr/bin/env bash
# author = Purple_Grape
set -e
#--------------------------------------------------------
VIP=192.168.1.200
RIP=192.168.1.21
yum install arptables_jf -y
#block arp request from VIP
arptables -Z
arptables -F
arptables -A IN -d $VIP -j DROP
arptables -A OUT -s $VIP -j mangle --mangle-ip-s $RIP
/etc/init.d/arptables_jf save
chkconfig arptables_jf --level 2345 on
# add VIP
echo "ifconfig eth0:1 $VIP up" >> /etc/rc.local
reboot
#the end

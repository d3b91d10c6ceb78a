"""The VPC the cluster runs in: private subnets for every node, public ones only for NAT.

Given an existing VPC, it only tags that VPC's private subnets for Karpenter discovery.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_aws import ec2

from components.aws.cluster import digest
from components.settings import AwsSettings

DISCOVERY_TAG = "karpenter.sh/discovery"
# Zone ids where EKS refuses cluster subnets (UnsupportedAvailabilityZoneException). Zone names
# map to different physical zones per account, ids do not. Source: Amazon EKS User Guide,
# "View Amazon EKS networking requirements for VPC and subnets" (network-reqs.html#
# network-requirements-subnets); eksctl keeps the same list.
EKS_UNSUPPORTED_ZONE_IDS = ("use1-az3", "usw1-az2", "cac1-az3")
# Standard zones only: no opt-in Local Zones or Wavelength Zones (EKS places no control plane
# there and their instance types differ).
STANDARD_ZONE_FILTERS = (
    {"name": "zone-type", "values": ["availability-zone"]},
    {"name": "opt-in-status", "values": ["opt-in-not-required"]},
)


@dataclass(frozen=True)
class EksNetworkArgs:
    cluster_name: str
    settings: AwsSettings
    availability_zones: Sequence[str]
    tags: Mapping[str, str]


def subnet_cidrs(vpc_cidr: str, zones: int) -> tuple[list[str], list[str]]:
    """Large private subnets (pods take VPC IPs) and small public ones, one of each per AZ."""
    vpc = ipaddress.ip_network(vpc_cidr)
    eighths = list(vpc.subnets(new_prefix=vpc.prefixlen + 3))
    private = [str(n) for n in eighths[:zones]]
    public = [str(n) for n in list(eighths[-1].subnets(new_prefix=vpc.prefixlen + 6))[:zones]]
    return private, public


class EksNetwork(pulumi.ComponentResource):
    """VPC, subnets, NAT and routes, tagged for EKS load balancers and Karpenter."""

    vpc_id: pulumi.Output[str]
    private_subnet_ids: pulumi.Output[list[str]]

    def __init__(
        self, name: str, args: EksNetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:aws:EksNetwork", name, None, opts)
        s = args.settings
        if s.existing_vpc_id:
            self.vpc_id = pulumi.Output.from_input(s.existing_vpc_id)
            for i, subnet_id in enumerate(s.existing_private_subnet_ids):
                # Named by the subnet, not its list position: two tag resources for one subnet
                # (a reordered list) would delete the tag when the old one goes. The alias is the
                # name of earlier releases, so the move renames instead.
                ec2.Tag(
                    f"{name}-discovery-{digest(subnet_id)}",
                    resource_id=subnet_id,
                    key=DISCOVERY_TAG,
                    value=args.cluster_name,
                    opts=pulumi.ResourceOptions(
                        parent=self, aliases=[pulumi.Alias(name=f"{name}-discovery-{i}")]
                    ),
                )
            self.private_subnet_ids = pulumi.Output.from_input(list(s.existing_private_subnet_ids))
        else:
            self._create(name, args)
        self.register_outputs(
            {"vpc_id": self.vpc_id, "private_subnet_ids": self.private_subnet_ids}
        )

    def _create(self, name: str, args: EksNetworkArgs) -> None:
        s, tags = args.settings, dict(args.tags)
        child = pulumi.ResourceOptions(parent=self)
        zones = list(args.availability_zones)[: s.availability_zone_count]
        private_cidrs, public_cidrs = subnet_cidrs(s.vpc_cidr, len(zones))
        vpc = ec2.Vpc(
            f"{name}-vpc",
            cidr_block=s.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**tags, "Name": f"{args.cluster_name}"},
            opts=child,
        )
        # Nothing may use the default security group by accident.
        ec2.DefaultSecurityGroup(f"{name}-default-sg", vpc_id=vpc.id, tags=tags, opts=child)
        igw = ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tags, opts=child)
        public_rt = ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=vpc.id,
            routes=[ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={**tags, "Name": f"{args.cluster_name}-public"},
            opts=child,
        )
        nats: list[ec2.NatGateway] = []
        private_ids: list[pulumi.Output[str]] = []
        for i, (zone, private_cidr, public_cidr) in enumerate(
            zip(zones, private_cidrs, public_cidrs, strict=True)
        ):
            public = ec2.Subnet(
                f"{name}-public-{i}",
                vpc_id=vpc.id,
                cidr_block=public_cidr,
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={
                    **tags,
                    "Name": f"{args.cluster_name}-public-{zone}",
                    "kubernetes.io/role/elb": "1",
                },
                opts=child,
            )
            ec2.RouteTableAssociation(
                f"{name}-public-{i}", subnet_id=public.id, route_table_id=public_rt.id, opts=child
            )
            if i == 0 or s.nat_gateway_per_az:
                eip = ec2.Eip(f"{name}-nat-{i}", domain="vpc", tags=tags, opts=child)
                nats.append(
                    ec2.NatGateway(
                        f"{name}-nat-{i}",
                        allocation_id=eip.allocation_id,
                        subnet_id=public.id,
                        tags={**tags, "Name": f"{args.cluster_name}-{zone}"},
                        opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                    )
                )
            private = ec2.Subnet(
                f"{name}-private-{i}",
                vpc_id=vpc.id,
                cidr_block=private_cidr,
                availability_zone=zone,
                tags={
                    **tags,
                    "Name": f"{args.cluster_name}-private-{zone}",
                    "kubernetes.io/role/internal-elb": "1",
                    DISCOVERY_TAG: args.cluster_name,
                },
                opts=child,
            )
            private_rt = ec2.RouteTable(
                f"{name}-private-rt-{i}",
                vpc_id=vpc.id,
                routes=[
                    ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nats[-1].id)
                ],
                tags={**tags, "Name": f"{args.cluster_name}-private-{zone}"},
                opts=child,
            )
            ec2.RouteTableAssociation(
                f"{name}-private-{i}",
                subnet_id=private.id,
                route_table_id=private_rt.id,
                opts=child,
            )
            private_ids.append(private.id)
        self.vpc_id = vpc.id
        self.private_subnet_ids = pulumi.Output.all(*private_ids)

"""Every chart, add-on, AMI and API version the program deploys, pinned in one place.

The custom-resource API versions match the CRDs vendored in tests/reference (KEDA v2.20.2, Karpenter
AWS v1.14.1, Karpenter Azure v1.14.2); tests validate what we render against those CRDs.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class HelmChart:
    chart: str
    version: str
    repo: str | None = None  # None for OCI charts, whose reference is the chart itself


KEDA_CHART = HelmChart(chart="keda", version="2.20.2", repo="https://kedacore.github.io/charts")
KARPENTER_CHART = HelmChart(chart="oci://public.ecr.aws/karpenter/karpenter", version="1.14.1")
# Karpenter's CRDs as a chart of their own, at the controller's version: Helm installs a chart's
# crds/ folder once and never upgrades it (Karpenter v1.14.1, website/content/en/docs/upgrading/
# upgrade-guide.md, "CRD Upgrades": "we recommend using the independent karpenter-crd chart").
KARPENTER_CRD_CHART = HelmChart(
    chart="oci://public.ecr.aws/karpenter/karpenter-crd", version=KARPENTER_CHART.version
)

KEDA_API = "keda.sh/v1alpha1"
KARPENTER_API = "karpenter.sh/v1"
EC2_NODE_CLASS_API = "karpenter.k8s.aws/v1"
AKS_NODE_CLASS_API = "karpenter.azure.com/v1beta1"

# Kubernetes minors the AWS stack accepts: what both pinned controllers support. Karpenter 1.14:
# 1.30-1.36 (karpenter-provider-aws v1.14.1, website/content/en/docs/upgrading/compatibility.md,
# "Compatibility Matrix"); KEDA 2.20: 1.33-1.35 (keda.sh/docs/2.20/operate/cluster, "Kubernetes
# Compatibility"). Each needs its add-on versions below.
EKS_KUBERNETES_VERSIONS = ("1.33", "1.34", "1.35")
# EKS add-on versions per Kubernetes minor, never "latest" nor EKS's moving default. Amazon EKS
# User Guide, "Manage CoreDNS" and "Manage kube-proxy", version tables (read August 2026).
COREDNS_ADDON = {
    "1.33": "v1.12.4-eksbuild.18",
    "1.34": "v1.13.2-eksbuild.11",
    "1.35": "v1.14.3-eksbuild.3",
}
KUBE_PROXY_ADDON = {
    "1.33": "v1.33.10-eksbuild.13",
    "1.34": "v1.34.6-eksbuild.13",
    "1.35": "v1.35.3-eksbuild.13",
}
# amazon-cloudwatch-observability: a version the CloudWatch user guide names ("Install the
# CloudWatch agent with the Amazon CloudWatch Observability EKS add-on or the Helm chart"); its
# Helm chart 6.2.0 (aws-observability/helm-charts) has the switches we set (prometheus.py).
CLOUDWATCH_OBSERVABILITY_ADDON = "v6.2.0-eksbuild.1"
# The EKS-optimized AL2023 AMI release Karpenter launches (awslabs/amazon-eks-ami tag v20260724);
# "al2023@latest" would move every node whenever a new AMI ships (Karpenter drift).
AL2023_AMI_ALIAS = "al2023@v20260724"
# Kubernetes minors each cloud gets when edw:kubernetesVersion is unset. AKS: the oldest minor
# AKS still supports, so an older stack moves one minor (AKS upgrades one minor at a time and the
# `patch` upgrade channel never changes the minor). AKS release calendar
# (MicrosoftDocs/azure-aks-docs articles/aks/supported-kubernetes-versions.md, Aug 2026):
# 1.34 end of life Nov 2026, 1.35 Mar 2027, 1.36 Jun 2027, 1.37 Oct 2027.
DEFAULT_KUBERNETES_VERSION = {"aws": "1.34", "azure": "1.35"}
AKS_SUPPORTED_MINORS = ("1.35", "1.36", "1.37")

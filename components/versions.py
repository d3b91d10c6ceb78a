"""Every chart and API version the program deploys, pinned in one place.

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

KEDA_API = "keda.sh/v1alpha1"
KARPENTER_API = "karpenter.sh/v1"
EC2_NODE_CLASS_API = "karpenter.k8s.aws/v1"
AKS_NODE_CLASS_API = "karpenter.azure.com/v1beta1"

# Kubernetes minors each cloud gets when edw:kubernetesVersion is unset. AKS: the oldest minor
# AKS still supports, so an older stack moves one minor (AKS upgrades one minor at a time and the
# `patch` upgrade channel never changes the minor). AKS release calendar
# (MicrosoftDocs/azure-aks-docs articles/aks/supported-kubernetes-versions.md, Aug 2026):
# 1.34 end of life Nov 2026, 1.35 Mar 2027, 1.36 Jun 2027, 1.37 Oct 2027.
DEFAULT_KUBERNETES_VERSION = {"aws": "1.34", "azure": "1.35"}
AKS_SUPPORTED_MINORS = ("1.35", "1.36", "1.37")

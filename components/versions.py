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

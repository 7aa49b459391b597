"""What an expression may name: the allowlist of torch functions, Tensor methods and attributes.

Anything not listed here is refused before the expression runs. ``ELEMENTWISE`` marks the entries
whose value at one element depends only on the inputs at that element (and that draw no random
numbers): an expression made only of those can be evaluated chunk by chunk.
"""
from __future__ import annotations

import torch


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# -- elementwise building blocks (functions of torch and methods of Tensor alike) --------------
_UNARY = _words("""
    abs absolute sign sgn signbit exp exp2 expm1 log log2 log10 log1p sqrt rsqrt square
    sin cos tan asin acos atan sinh cosh tanh asinh acosh atanh arcsin arccos arctan arcsinh
    arccosh arctanh sigmoid logit erf erfc erfinv round floor ceil trunc frac fix neg negative
    positive reciprocal isnan isinf isfinite isposinf isneginf isreal nan_to_num relu clamp clip
    clamp_min clamp_max deg2rad rad2deg angle conj lgamma digamma i0 sinc logical_not bitwise_not
""")
_BINARY = _words("""
    where add sub subtract mul multiply div divide true_divide floor_divide remainder fmod pow
    float_power atan2 arctan2 hypot maximum minimum fmax fmin eq ne lt le gt ge greater less
    greater_equal less_equal not_equal logical_and logical_or logical_xor bitwise_and
    bitwise_or bitwise_xor bitwise_left_shift bitwise_right_shift copysign nextafter lerp
    isclose xlogy ldexp heaviside masked_fill
""")
_LIKE = _words("zeros_like ones_like full_like")
_CASTS = _words("float double half bfloat16 int long short bool cfloat cdouble type_as")

# -- torch.* -----------------------------------------------------------------------------------
TORCH = (_UNARY | _BINARY | _LIKE) - {"masked_fill"} | _words("""
    sum mean std var median nanmedian min max amin amax aminmax prod norm argmax argmin
    quantile nanquantile nansum nanmean cumsum cumprod cummax cummin logcumsumexp sort argsort
    topk kthvalue msort flip fliplr flipud roll rot90 transpose t reshape flatten squeeze
    unsqueeze cat concat concatenate stack hstack vstack dstack matmul mm bmm mv outer einsum
    tensordot dot vdot inner cross kron tile diag diagonal diag_embed tril triu trace
    tensor as_tensor scalar_tensor zeros ones full arange linspace logspace eye
    rand rand_like randn randn_like randint randint_like randperm normal bernoulli multinomial
    poisson count_nonzero all any allclose equal numel std_mean var_mean logsumexp softmax
    log_softmax cdist dist cosine_similarity chunk split tensor_split unbind narrow select
    index_select masked_select gather take nonzero argwhere unique unique_consecutive
    histc bucketize searchsorted broadcast_to movedim moveaxis permute swapaxes swapdims
    cov corrcoef diff gradient trapezoid cumulative_trapezoid complex polar view_as_real
    view_as_complex is_floating_point is_complex is_nonzero real imag
""")
#: plain values of torch (numbers; the dtypes are added below)
TORCH_VALUES = {"pi": torch.pi, "e": torch.e, "inf": torch.inf, "nan": torch.nan}
TORCH_VALUES.update({n: v for n, v in vars(torch).items()
                     if isinstance(v, torch.dtype) and not n.startswith("_")})

NN_FUNCTIONAL = _words("""
    relu relu6 elu selu celu gelu silu mish softplus softsign tanhshrink softshrink hardshrink
    hardtanh hardsigmoid hardswish leaky_relu logsigmoid sigmoid tanh threshold glu
    normalize softmax log_softmax softmin dropout alpha_dropout pad one_hot linear
    cosine_similarity pairwise_distance
""")
SPECIAL = _words("""
    expit logit erf erfc erfinv erfcx ndtr ndtri log_ndtr i0 i0e i1 i1e sinc entr xlogy
    xlog1py gammaln digamma psi round exp2 expm1 log1p softmax log_softmax logsumexp
""")
LINALG = _words("""
    norm vector_norm matrix_norm svd svdvals qr eig eigvals eigh eigvalsh det slogdet inv
    pinv matrix_rank cond matrix_power matrix_exp solve lstsq cholesky cross vecdot
    multi_dot diagonal
""")
FFT = _words("""
    fft ifft rfft irfft hfft ihfft fft2 ifft2 rfft2 irfft2 fftn ifftn rfftn irfftn fftshift
    ifftshift fftfreq rfftfreq
""")

#: ``torch.<path>.<name>`` -> the names allowed under that path
MODULES = {(): TORCH, ("nn", "functional"): NN_FUNCTIONAL, ("special",): SPECIAL,
           ("linalg",): LINALG, ("fft",): FFT}

# -- Tensor methods and attributes --------------------------------------------------------------
METHODS = (_UNARY | _BINARY | _CASTS) | _words("""
    sum mean std var median nanmedian min max amin amax aminmax prod norm argmax argmin
    quantile nanquantile nansum nanmean cumsum cumprod cummax cummin logcumsumexp sort argsort
    topk kthvalue msort flip fliplr flipud roll rot90 transpose t reshape reshape_as view
    view_as flatten squeeze unsqueeze expand expand_as repeat tile permute movedim swapaxes
    contiguous clone detach matmul mm mv dot outer cross kron diag diagonal tril triu trace
    numel nelement dim ndimension size count_nonzero all any allclose equal isclose item
    softmax log_softmax logsumexp chunk split tensor_split unbind narrow select index_select
    masked_select gather take nonzero argwhere unique unique_consecutive histc new_zeros
    new_ones new_full new_tensor is_floating_point is_complex to diff
""")
ATTRIBUTES = _words("T mT H mH shape dtype ndim real imag device")
#: fields of the named tuples torch returns (``torch.max(w, 0).values``)
RESULT_FIELDS = _words("values indices")

ELEMENTWISE = _UNARY | _BINARY | _LIKE | _CASTS | _words("""
    relu6 elu selu celu gelu silu mish softplus softsign tanhshrink softshrink hardshrink
    hardtanh hardsigmoid hardswish leaky_relu logsigmoid threshold expit erfcx ndtr ndtri
    log_ndtr i0e i1 i1e entr xlog1py gammaln psi real imag
""")

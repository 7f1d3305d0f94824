"""The model zoo swept by ``prune_zoo.py``.

mmpretrain: the smallest ImageNet-1k classification config of every model family in
``mmpretrain/.mim/configs``. "Smallest" = fewest parameters of the built model (the metafile
``Parameters`` are unreliable, e.g. ResNet-34 is listed with 2.18M); candidates are the configs
that the family's ``metafile.yml`` lists with an "Image Classification" result on ImageNet-1k
(``resnest`` has no metafile: its ``*_in1k.py`` configs). Ties go to the lower resolution, then
to the plain (non-distilled) variant. :func:`select_smallest_mmpretrain` recomputes the choice;
the list below is its frozen output (a few minutes to recompute on 2 CPU cores).

Self-supervised families only ship ImageNet classification configs as ``benchmarks/``
(linear-probe / fine-tune of the pretrained backbone). They are skipped when that backbone is
already covered by a supervised family (ResNet-50, ViT, Swin, ConvNeXt-V2); ``beit`` (BEiT-ViT)
and ``mixmim`` (MixMIM) bring backbones that no supervised family has, so their fine-tune
configs are included.
"""

# name, config, optional: cfg_options (merged into the config), input_shape, note
MMPRETRAIN = [
    dict(name='beit-base',
         config='mmpretrain::beit/benchmarks/beit-base-p16_8xb128-coslr-100e_in1k.py',
         note='self-supervised family; fine-tune config (BEiT-ViT backbone)'),
    dict(name='clip-vit-base-p16', config='mmpretrain::clip/vit-base-p16_pt-64xb64_in1k.py'),
    dict(name='conformer-tiny-p16',
         config='mmpretrain::conformer/conformer-tiny-p16_8xb128_in1k.py'),
    dict(name='convmixer-768-32', config='mmpretrain::convmixer/convmixer-768-32_10xb64_in1k.py'),
    dict(name='convnext-tiny', config='mmpretrain::convnext/convnext-tiny_32xb128_in1k.py'),
    dict(name='convnext-v2-atto', config='mmpretrain::convnext_v2/convnext-v2-atto_32xb32_in1k.py'),
    dict(name='cspresnext50', config='mmpretrain::cspnet/cspresnext50_8xb32_in1k.py'),
    dict(name='davit-tiny', config='mmpretrain::davit/davit-tiny_4xb256_in1k.py'),
    dict(name='deit-tiny', config='mmpretrain::deit/deit-tiny_4xb256_in1k.py'),
    dict(name='deit3-small-p16', config='mmpretrain::deit3/deit3-small-p16_64xb64_in1k.py'),
    dict(name='densenet121', config='mmpretrain::densenet/densenet121_4xb256_in1k.py'),
    dict(name='edgenext-xxsmall', config='mmpretrain::edgenext/edgenext-xxsmall_8xb256_in1k.py'),
    dict(name='efficientformer-l1',
         config='mmpretrain::efficientformer/efficientformer-l1_8xb128_in1k.py'),
    dict(name='efficientnet-b0', config='mmpretrain::efficientnet/efficientnet-b0_8xb32_in1k.py'),
    dict(name='efficientnetv2-b0',
         config='mmpretrain::efficientnet_v2/efficientnetv2-b0_8xb32_in1k.py'),
    dict(name='eva-l-p14', config='mmpretrain::eva/eva-l-p14_8xb16_in1k-196px.py',
         note='smallest EVA classification config is ViT-L (304M params)'),
    dict(name='eva02-tiny-p14', config='mmpretrain::eva02/eva02-tiny-p14_in1k.py',
         note='no depth units: both residual branches of a layer end in the same `drop_path` '
         'module (the tracer wants a branch module called once); attention by matmul (no head '
         'units) over 577 tokens at 336x336 keeps much of the FLOPs'),
    dict(name='hivit-tiny-p16', config='mmpretrain::hivit/hivit-tiny-p16_16xb64_in1k.py'),
    dict(name='hornet-tiny', config='mmpretrain::hornet/hornet-tiny_8xb128_in1k.py'),
    dict(name='hrnet-w18', config='mmpretrain::hrnet/hrnet-w18_4xb32_in1k.py'),
    dict(name='inception-v3', config='mmpretrain::inception_v3/inception-v3_8xb32_in1k.py'),
    dict(name='levit-128s', config='mmpretrain::levit/levit-128s_8xb256_in1k.py'),
    dict(name='mixmim-base',
         config='mmpretrain::mixmim/benchmarks/mixmim-base_8xb128-coslr-100e_in1k.py',
         note='self-supervised family; fine-tune config (MixMIM backbone)'),
    dict(name='mlp-mixer-base-p16',
         config='mmpretrain::mlp_mixer/mlp-mixer-base-p16_64xb64_in1k.py'),
    dict(name='mobilenet-v2', config='mmpretrain::mobilenet_v2/mobilenet-v2_8xb32_in1k.py'),
    dict(name='mobilenet-v3-small-050',
         config='mmpretrain::mobilenet_v3/mobilenet-v3-small-050_8xb128_in1k.py'),
    dict(name='mobileone-s1', config='mmpretrain::mobileone/mobileone-s1_8xb32_in1k.py',
         note='train-time (multi-branch) form; s1 has fewer train-time params than s0'),
    dict(name='mobilevit-xxsmall', config='mmpretrain::mobilevit/mobilevit-xxsmall_8xb128_in1k.py'),
    dict(name='mvitv2-tiny', config='mmpretrain::mvit/mvitv2-tiny_8xb256_in1k.py'),
    dict(name='poolformer-s12', config='mmpretrain::poolformer/poolformer-s12_32xb128_in1k.py'),
    dict(name='regnetx-400mf', config='mmpretrain::regnet/regnetx-400mf_8xb128_in1k.py'),
    dict(name='replknet-31B', config='mmpretrain::replknet/replknet-31L_32xb64_in1k-384px.py',
         cfg_options={'model.backbone.arch': '31B', 'model.head.in_channels': 1024},
         note='replknet-31B_*.py cannot be loaded (its _base_ model file imports '
         'mmpretrain.models, which mmengine rejects in a non-lazy config); built as 31L config '
         'with arch=31B'),
    dict(name='repmlp-base', config='mmpretrain::repmlp/repmlp-base_8xb64_in1k.py'),
    dict(name='repvgg-A0', config='mmpretrain::repvgg/repvgg-A0_8xb32_in1k.py',
         note='train-time (multi-branch) form'),
    dict(name='res2net50-w14-s8', config='mmpretrain::res2net/res2net50-w14-s8_8xb32_in1k.py'),
    dict(name='resnest50', config='mmpretrain::resnest/resnest50_32xb64_in1k.py'),
    dict(name='resnet18', config='mmpretrain::resnet/resnet18_8xb32_in1k.py'),
    dict(name='resnext50-32x4d', config='mmpretrain::resnext/resnext50-32x4d_8xb32_in1k.py'),
    dict(name='revvit-small', config='mmpretrain::revvit/revvit-small_8xb256_in1k.py'),
    dict(name='riformer-s12', config='mmpretrain::riformer/riformer-s12_8xb128_in1k.py'),
    dict(name='seresnet50', config='mmpretrain::seresnet/seresnet50_8xb32_in1k.py'),
    dict(name='shufflenet-v1-1x',
         config='mmpretrain::shufflenet_v1/shufflenet-v1-1x_16xb64_in1k.py'),
    dict(name='shufflenet-v2-1x',
         config='mmpretrain::shufflenet_v2/shufflenet-v2-1x_16xb64_in1k.py'),
    dict(name='swin-tiny', config='mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py'),
    dict(name='swinv2-tiny-w8',
         config='mmpretrain::swin_transformer_v2/swinv2-tiny-w8_16xb64_in1k-256px.py'),
    dict(name='t2t-vit-t-14', config='mmpretrain::t2t_vit/t2t-vit-t-14_8xb64_in1k.py'),
    dict(name='tinyvit-5m', config='mmpretrain::tinyvit/tinyvit-5m_8xb256_in1k.py'),
    dict(name='tnt-s-p16', config='mmpretrain::tnt/tnt-s-p16_16xb64_in1k.py'),
    dict(name='twins-svt-small', config='mmpretrain::twins/twins-svt-small_8xb128_in1k.py'),
    dict(name='van-tiny', config='mmpretrain::van/van-tiny_8xb128_in1k.py'),
    dict(name='vgg11', config='mmpretrain::vgg/vgg11_8xb32_in1k.py'),
    dict(name='vig-tiny', config='mmpretrain::vig/vig-tiny_8xb128_in1k.py'),
    dict(name='vit-base-p16',
         config='mmpretrain::vision_transformer/vit-base-p16_32xb128-mae_in1k.py'),
    dict(name='wide-resnet50', config='mmpretrain::wrn/wide-resnet50_8xb32_in1k.py'),
    dict(name='xcit-nano-12-p8', config='mmpretrain::xcit/xcit-nano-12-p8_8xb128_in1k.py'),
]

MMDET = [
    dict(name='retinanet-r50', config='mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'),
    dict(name='fcos-r50', config='mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py'),
    dict(name='faster-rcnn-r50', config='mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
         input_shape=[1, 3, 512, 512],
         note='run as backbone+neck, raw RPN outputs and the RoI head on 64 fixed proposals '
         '(sides 6-94% of the image, so that at 512x512 every RoI level gets boxes, as with '
         "COCO-sized inputs): in tensor mode (model(x, samples, mode='tensor')) the RPN's "
         'top-k/NMS reorders exactly tied scores of the untrained RPN on 1e-7 differences, so '
         'masked and exported outputs are different boxes'),
    dict(name='faster-rcnn-r50@256', config='mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
         note='fixed proposals at 256x256: RoI level 3 (boxes >= 448 px) stays empty, so '
         "mmdet's `feats[3].sum() * 0.` runs (a reduction over the FPN channels, which the RoI "
         "extractor's fixed-size buffer freezes anyway)"),
    dict(name='faster-rcnn-r50(tensor)',
         config='mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', two_stage_call='tensor',
         note="model(x, samples, mode='tensor') as is, 256x256: outputs follow the RPN's "
         'top-k/NMS order'),
    dict(name='atss-r50', config='mmdet::atss/atss_r50_fpn_1x_coco.py'),
]

MMYOLO = [
    dict(name='yolov5-s', config='mmyolo::yolov5/yolov5_s-v61_syncbn_fast_8xb16-300e_coco.py'),
    dict(name='yolov6-n', config='mmyolo::yolov6/yolov6_n_syncbn_fast_8xb32-400e_coco.py'),
    dict(name='yolov8-n', config='mmyolo::yolov8/yolov8_n_syncbn_fast_8xb16-500e_coco.py'),
    dict(name='yolov8-s', config='mmyolo::yolov8/yolov8_s_syncbn_fast_8xb16-500e_coco.py'),
    dict(name='rtmdet-tiny', config='mmyolo::rtmdet/rtmdet_tiny_syncbn_fast_8xb32-300e_coco.py'),
]

ZOO = MMPRETRAIN + MMDET + MMYOLO

# the tracing-speed requirement: ResNet-50 at 224x224 traces in < 10 s
TRACE_BENCHMARK = dict(name='resnet50@224', config='mmpretrain::resnet/resnet50_8xb32_in1k.py',
                       input_shape=[1, 3, 224, 224], limit_seconds=10.0)

SSL_COVERED = ('self-supervised pretraining; its only ImageNet classification configs are '
               'benchmarks/ linear-probe/fine-tune runs of a backbone already in the sweep')
SKIPPED = {
    'arcface': 'metric learning: only an InShop image-retrieval config',
    'barlowtwins': SSL_COVERED + ' (ResNet-50)',
    'beitv2': SSL_COVERED + ' (BEiT-ViT, see beit-base)',
    'blip': 'multimodal (captioning/VQA/retrieval/grounding)',
    'blip2': 'multimodal (captioning/VQA/retrieval)',
    'byol': SSL_COVERED + ' (ResNet-50)',
    'cae': SSL_COVERED + ' (BEiT-ViT, see beit-base)',
    'chinese_clip': 'multimodal zero-shot classifier (CIFAR-100 configs only)',
    'csra': 'multi-label classification on VOC2007 (448px), no ImageNet config',
    'densecl': SSL_COVERED + ' (ResNet-50)',
    'dinov2': 'headless backbone configs only (no classification head)',
    'flamingo': 'multimodal (captioning/VQA)',
    'glip': 'headless backbone configs only (no classification head)',
    'itpn': 'self-supervised pretraining only (no classification config)',
    'lenet': 'MNIST only',
    'llava': 'multimodal (captioning/VQA)',
    'mae': SSL_COVERED + ' (ViT)',
    'maskfeat': SSL_COVERED + ' (ViT)',
    'mff': SSL_COVERED + ' (ViT)',
    'milan': SSL_COVERED + ' (ViT)',
    'minigpt4': 'multimodal (captioning)',
    'mocov2': SSL_COVERED + ' (ResNet-50)',
    'mocov3': SSL_COVERED + ' (ResNet-50 / ViT)',
    'ofa': 'multimodal (captioning/VQA/grounding)',
    'otter': 'multimodal (captioning/VQA)',
    'sam': 'headless backbone configs only (no classification head)',
    'simclr': SSL_COVERED + ' (ResNet-50)',
    'simmim': SSL_COVERED + ' (Swin)',
    'simsiam': SSL_COVERED + ' (ResNet-50)',
    'spark': SSL_COVERED + ' (ResNet-50 / ConvNeXt-V2)',
    'swav': SSL_COVERED + ' (ResNet-50)',
}


def select_smallest_mmpretrain(package_root=None):
    """Recompute the smallest ImageNet-1k classification config per mmpretrain family.

    Returns ``{family: (config, num_params) or None}``. Builds every candidate model (on the
    meta device where possible), so it takes a few minutes.
    """
    import os
    import os.path as osp

    import torch
    import yaml
    from mmengine.registry import MODELS, DefaultScope

    import mmpretrain
    import mmpretrain.models  # noqa: F401
    from mmdms.utils import load_config
    root = package_root or osp.join(osp.dirname(mmpretrain.__file__), '.mim')
    families = sorted(d for d in os.listdir(osp.join(root, 'configs'))
                      if d != '_base_' and osp.isdir(osp.join(root, 'configs', d)))
    chosen = {}
    for family in families:
        metafile = osp.join(root, 'configs', family, 'metafile.yml')
        configs = set()
        if osp.exists(metafile):
            with open(metafile) as f:
                models = yaml.safe_load(f).get('Models', [])
            for m in models:
                results = m.get('Results') or []
                if any(r.get('Task') == 'Image Classification'
                       and r.get('Dataset') == 'ImageNet-1k' for r in results):
                    path = m.get('Config')
                    if path and osp.exists(osp.join(root, path)) and \
                            '/benchmarks/' not in path and '/deploy/' not in path:
                        configs.add(path)
        else:
            folder = osp.join(root, 'configs', family)
            configs = {f'configs/{family}/{f}' for f in os.listdir(folder)
                       if f.endswith('.py') and 'in1k' in f}
        sizes = []
        for path in configs:
            try:
                cfg = load_config(osp.join(root, path))
                try:
                    with DefaultScope.overwrite_default_scope('mmpretrain'), \
                            torch.device('meta'):
                        model = MODELS.build(cfg.model)
                except Exception:
                    with DefaultScope.overwrite_default_scope('mmpretrain'):
                        model = MODELS.build(cfg.model)
            except Exception:
                continue
            params = sum(p.numel() for p in model.parameters())
            hi_res = any(tag in path for tag in ('px', 'distill'))
            sizes.append((params, hi_res, path))
        chosen[family] = (sorted(sizes)[0][2], sorted(sizes)[0][0]) if sizes else None
    return chosen


def load_model_list(spec=None):
    """``None``/``all``: the whole zoo; ``mmpretrain``/``mmdet``/``mmyolo``: that part; a comma
    separated list of names or configs; or a file with one name/config per line."""
    import os.path as osp
    groups = dict(all=ZOO, mmpretrain=MMPRETRAIN, mmdet=MMDET, mmyolo=MMYOLO)
    if spec is None or spec in groups:
        return [dict(m) for m in groups[spec or 'all']]
    if osp.isfile(spec):
        with open(spec) as f:
            items = [line.split('#', 1)[0].strip() for line in f]
    else:
        items = [s.strip() for s in spec.split(',')]
    by_name = {m['name']: m for m in ZOO}
    by_config = {m['config']: m for m in ZOO}
    models = []
    for item in filter(None, items):
        if item in groups:
            models += [dict(m) for m in groups[item]]
        elif item in by_name:
            models.append(dict(by_name[item]))
        elif item in by_config:
            models.append(dict(by_config[item]))
        else:  # any config path
            name = osp.splitext(osp.basename(item.split('::')[-1]))[0]
            models.append(dict(name=name, config=item))
    return models

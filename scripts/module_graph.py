#!/usr/bin/env python3
"""The module graph of src/ from its `use crate::`, `super::` and child-module paths (every
edge counts, a parent's re-export of a child included); exits 1 and lists the loops if any.
Usage: python3 scripts/module_graph.py [src] [-v]"""
import os,re,sys
args=[a for a in sys.argv[1:] if not a.startswith('-')]
root=args[0] if args else 'src'
files={}
for d,_,fs in os.walk(root):
    for f in fs:
        if f.endswith('.rs'):
            p=os.path.join(d,f)
            rel=os.path.relpath(p,root)[:-3].split(os.sep)
            if rel[-1] in('mod',):rel=rel[:-1]
            if rel==['lib']:rel=[]
            files['::'.join(rel)]=p
mods=set(files)
def strip(src):
    src=re.sub(r'//[^\n]*','',src)
    src=re.sub(r'/\*.*?\*/','',src,flags=re.S)
    src=re.sub(r'"(\\.|[^"\\])*"','""',src)
    return src
def expand(prefix,body):
    # body of a use tree after prefix, e.g. "{a, b::{c,d}}"
    out=[]
    body=body.strip()
    if body.startswith('{'):
        inner=body[1:-1]
        depth=0;cur=''
        for ch in inner:
            if ch=='{':depth+=1
            if ch=='}':depth-=1
            if ch==',' and depth==0:
                if cur.strip():out+=expand(prefix,cur)
                cur=''
            else:cur+=ch
        if cur.strip():out+=expand(prefix,cur)
        return out
    m=re.match(r'([\w:]*?)(::)?(\{.*\})$',body,re.S)
    if m and m.group(3):
        p=prefix+[x for x in m.group(1).split('::') if x]
        return expand(p,m.group(3))
    body=re.sub(r'\s+as\s+\w+$','',body)
    return [prefix+[x for x in body.split('::') if x]]
def resolve(cur,path):
    if not path:return None
    if path[0]=='crate':base=[];path=path[1:]
    elif path[0]=='super':
        base=cur.split('::')[:-1] if cur else []
        path=path[1:]
        while path and path[0]=='super':base=base[:-1];path=path[1:]
    elif path[0]=='self':base=cur.split('::') if cur else [];path=path[1:]
    else:return None
    best=None
    for i in range(len(path)+1):
        cand='::'.join(base+path[:i])
        if cand in mods:best=cand
    return best
edges={m:set() for m in mods}
for m,p in files.items():
    src=strip(open(p).read())
    # drop #[cfg(test)] mod tests { ... } : approximate by cutting at '#[cfg(test)]'
    i=src.find('#[cfg(test)]')
    if i>=0:src=src[:i]
    paths=[]
    for u in re.finditer(r'\buse\s+((?:crate|super|self)\b[^;]*);',src,re.S):
        paths+=expand([],u.group(1))
    for u in re.finditer(r'\b((?:crate|super|self)(?:::\w+)+)',src):
        paths.append(u.group(1).split('::'))
    # Bare paths into a child module (`eq4::Eq4`, `pub use common::X`).
    for c in mods:
        if c and c.rsplit('::',1)[0]==(m if '::' in c else '') and c!=m and (c.startswith(m+'::') or (m=='' and '::' not in c)):
            name=c.rsplit('::',1)[-1]
            if re.search(r'(?<![:\w])'+name+r'::',src):
                paths.append(['self',name])
    for path in paths:
        r=resolve(m,path)
        if r is not None and r!=m and not (m=='' ):
            # skip parent->child containment? keep edges; a parent's use of child counts
            edges[m].add(r)
# Tarjan
idx={};low={};st=[];on=set();sccs=[];c=[0]
sys.setrecursionlimit(10000)
def sc(v):
    idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
    for w in edges[v]:
        if w not in idx:sc(w);low[v]=min(low[v],low[w])
        elif w in on:low[v]=min(low[v],idx[w])
    if low[v]==idx[v]:
        comp=[]
        while True:
            w=st.pop();on.discard(w);comp.append(w)
            if w==v:break
        sccs.append(comp)
for v in mods:
    if v not in idx:sc(v)
loops=[s for s in sccs if len(s)>1]
if '-v' in sys.argv:
    for m in sorted(mods):
        print(f"{m or 'crate'} -> {', '.join(sorted(e or 'crate' for e in edges[m]))}")
print(f"{len(mods)} modules, {sum(len(e) for e in edges.values())} edges, {len(loops)} import loops")
for s in loops:print('  loop:',' , '.join(sorted(s)))
sys.exit(1 if loops else 0)

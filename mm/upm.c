// SPDX-License-Identifier: GPL-2.0
/*
 * User-guided page merging: madvise(MADV_UPM).
 *
 * A process that expects a range of its memory to be identical to memory of
 * other processes (a function runtime's model weights, say) advises it with
 * MADV_UPM. Before the call returns, every present anonymous page of the
 * range is merged with an identical page advised before, if there is one;
 * a page with no twin yet stays an ordinary private page, recorded as a
 * candidate, and merges when its twin is advised. The merging itself is
 * KSM's (see ksm_upm_merge() in mm/ksm.c), so merged pages are KSM pages,
 * kept in KSM's stable tree and found by rmap as KSM finds its own; this
 * file keeps the two content indexes through which an identical KSM page or
 * candidate is found without walking a tree, the administrator's switch and
 * the statistics in /sys/kernel/mm/upm/.
 */

#include <linux/highmem.h>
#include <linux/kobject.h>
#include <linux/ktime.h>
#include <linux/cred.h>
#include <linux/hash.h>
#include <linux/ksm.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/proc_ns.h>
#include <linux/random.h>
#include <linux/rhashtable.h>
#include <linux/sched/mm.h>
#include <linux/string.h>
#include <linux/sysfs.h>
#include <linux/xxhash.h>

#include "upm.h"

/*
 * The content index: every KSM page that can take more sharers, filed under
 * the hash of its content. Updated and searched under ksm_thread_mutex only,
 * so entries can be freed as soon as they are unlinked. KSM keeps it exact:
 * a page is filed when it becomes a KSM page and leaves when its stable node
 * is freed or cannot take more sharers (see stable_node_update_index() in
 * mm/ksm.c); no pass over it is needed.
 */
static const struct rhashtable_params upm_index_params = {
	.key_len = sizeof(struct upm_key),
	.key_offset = offsetof(struct upm_index_entry, key),
	.head_offset = offsetof(struct upm_index_entry, node),
	.automatic_shrinking = true,
};

/*
 * The candidate index: advised pages that matched nothing, filed under the
 * hash of their content when advised. An entry lives in its page's
 * rmap_item and leaves with it (see remove_rmap_item_from_tree()), when it
 * is found stale, or when its range is unmapped (__ksm_upm_unmap()). Filed
 * and looked up under ksm_thread_mutex; munmap takes entries out under the
 * mm's mmap_lock for write instead, which the rhashtable's own locking
 * allows. The rmap_items are freed only under ksm_thread_mutex, so what a
 * lookup returns stays valid; whether it is still a candidate is checked
 * under its mm's mmap_lock.
 */
static const struct rhashtable_params upm_candidate_params = {
	.key_len = sizeof(struct upm_key),
	.key_offset = offsetof(struct upm_candidate, key),
	.head_offset = offsetof(struct upm_candidate, node),
	.automatic_shrinking = true,
};

static struct rhltable upm_index;
static struct rhltable upm_candidates;
static bool upm_index_ready;
/*
 * Seeded at boot: with a known seed, pages of colliding content could be
 * planted to fill a victim's keys and keep its pages from merging.
 */
static u64 upm_hash_seed __ro_after_init;
static u64 upm_zero_hash __ro_after_init;

/* The administrator's switch, /sys/kernel/mm/upm/enabled. */
static bool upm_enabled __read_mostly = true;
/* /sys/kernel/mm/upm/default_domain: "user" (false) or "global" (true). */
static bool upm_default_global __read_mostly;

/* Totals over all calls, for /sys/kernel/mm/upm/. */
static atomic_long_t upm_calls;
static atomic_long_t upm_pages_scanned;
static atomic_long_t upm_pages_merged;
static atomic_long_t upm_pages_candidate;
static atomic_long_t upm_pages_new_ksm;
static atomic_long_t upm_pages_already_merged;
static atomic_long_t upm_pages_skipped;
static atomic_long_t upm_pages_zero;
static atomic64_t upm_time_ns;
static atomic_long_t upm_index_entries;
static atomic_long_t upm_candidate_entries;

/*
 * A page's key is the hash of its content XORed with this of its domain.
 * Multiplying by an odd constant is a bijection of the u64s, so identical
 * pages of two domains get two keys; "global" (0) leaves the hash alone.
 */
static u64 upm_domain_mix(u64 domain)
{
	return domain * GOLDEN_RATIO_64;
}

/**
 * upm_page_key - compute the content index key of a page
 * @page: the page; its content should be stable (write-protected) for the
 *        key to stay true
 * @domain: the merge domain of the page
 * @key: where to store the key
 */
void upm_page_key(struct page *page, u64 domain, struct upm_key *key)
{
	void *addr = kmap_local_page(page);

	key->hash = xxh64(addr, PAGE_SIZE, upm_hash_seed) ^
		    upm_domain_mix(domain);
	kunmap_local(addr);
}

/*
 * The default merge domain of a process no administrator assigned one, for
 * "user" (/sys/kernel/mm/upm/default_domain): its effective uid in its user
 * namespace, which are whose memory it could read anyway. The inode
 * numbers of namespaces have bit 31 set (PROC_USER_INIT_INO, and dynamic
 * ones from 0xf0000000), so bit 63 of the key is set in every one, and no
 * assigned id (at most INT_MAX) equals it. "global" is 0: all unassigned
 * processes together.
 */
static u64 upm_default_domain(const struct cred *cred)
{
	unsigned int inum = cred->user_ns->ns.inum;

	BUILD_BUG_ON(!(PROC_USER_INIT_INO & BIT(31)));
	if (READ_ONCE(upm_default_global))
		return 0;
	WARN_ON_ONCE(!(inum & BIT(31)));
	return UPM_DOMAIN_DERIVED | (u64)inum << 32 | __kuid_val(cred->euid);
}

/**
 * upm_refresh_domain - bring an mm's merge domain up to date
 * @mm: the mm, whose pages are about to be merged
 *
 * Called with ksm_thread_mutex held, by MADV_UPM for each batch and by
 * ksmd for each page it scans, before the domain is used. An
 * assigned domain stays; a default one follows the credentials of the mm's
 * owner (a setuid exec, setresuid) and the administrator's switch. With no
 * owner left (the mm is exiting), the last domain is kept.
 *
 * Return: the mm's merge domain.
 */
u64 upm_refresh_domain(struct mm_struct *mm)
{
	u64 domain = READ_ONCE(mm->upm_domain);
	struct task_struct *owner;

	if (domain && !(domain & UPM_DOMAIN_DERIVED))
		return domain;
	rcu_read_lock();
	owner = rcu_dereference(mm->owner);	/* CONFIG_UPM needs MEMCG */
	if (owner)
		domain = upm_default_domain(__task_cred(owner));
	rcu_read_unlock();
	WRITE_ONCE(mm->upm_domain, domain);
	return domain;
}

/**
 * upm_set_domain - put the calling process in a merge domain (prctl)
 * @mm: the process's mm
 * @id: the domain, 1 to INT_MAX
 *
 * Choosing a domain chooses whose pages to share: CAP_SYS_ADMIN only.
 *
 * Return: 0; -EINVAL for a bad @id; -EPERM without CAP_SYS_ADMIN; -EBUSY if
 * the process merged pages in another domain already.
 */
int upm_set_domain(struct mm_struct *mm, unsigned long id)
{
	if (!id || id > INT_MAX)
		return -EINVAL;
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	return ksm_upm_set_domain(mm, id);
}

/**
 * upm_get_domain - the merge domain a process was assigned (prctl)
 * @mm: the process's mm
 *
 * Return: the domain id, or 0 if none was assigned (the default applies).
 */
int upm_get_domain(struct mm_struct *mm)
{
	u64 domain = READ_ONCE(mm->upm_domain);

	return domain & UPM_DOMAIN_DERIVED ? 0 : domain;
}

/**
 * upm_emit_domain - print one line of /sys/kernel/mm/upm/domains
 * @buf: the sysfs buffer
 * @at: where in @buf to print
 * @domain: the merge domain
 * @shared: its KSM pages
 * @sharing: the further mappings of them
 *
 * Return: the number of bytes printed, 0 once @buf is full.
 */
int upm_emit_domain(char *buf, int at, u64 domain, unsigned long shared,
		    unsigned long sharing)
{
	if (!domain)
		return sysfs_emit_at(buf, at, "global %lu %lu\n", shared,
				     sharing);
	if (domain & UPM_DOMAIN_DERIVED)
		return sysfs_emit_at(buf, at, "uid=%u,userns=%u %lu %lu\n",
				     (u32)domain, (u32)(domain >> 32), shared,
				     sharing);
	return sysfs_emit_at(buf, at, "%llu %lu %lu\n", domain, shared,
			     sharing);
}

/**
 * upm_key_is_zero - tell whether a page with this key is filled with zeroes
 * @key: the page's key, from upm_page_key()
 * @domain: the domain the key was computed for
 * @page: the page, read only when the key matches that of a zero page
 *
 * Return: true if every byte of @page is zero.
 */
bool upm_key_is_zero(const struct upm_key *key, u64 domain, struct page *page)
{
	void *addr;
	bool zero;

	if (key->hash != (upm_zero_hash ^ upm_domain_mix(domain)))
		return false;
	addr = kmap_local_page(page);
	zero = !memchr_inv(addr, 0, PAGE_SIZE);
	kunmap_local(addr);
	return zero;
}

/**
 * upm_pages_identical - tell whether two pages hold the same bytes
 * @page1: one page
 * @page2: the other
 *
 * What pages_identical() tells, with fewer instructions: the generic
 * memcmp() that x86-64 and others use tests every word on its own and keeps
 * the order of the first difference, which a merge does not need. Eight
 * words are tested at a time here; a merge reads both pages whole anyway.
 * Where the architecture compares more than the bytes (arm64's MTE tags),
 * its memcmp_pages() decides.
 *
 * Return: true if every byte of @page1 equals that of @page2.
 */
bool upm_pages_identical(struct page *page1, struct page *page2)
{
	const unsigned long *a, *b;
	unsigned long diff = 0;
	int i;

	if (IS_ENABLED(CONFIG_ARM64_MTE))
		return pages_identical(page1, page2);
	a = kmap_local_page(page1);
	b = kmap_local_page(page2);
	for (i = 0; i < PAGE_SIZE / sizeof(*a) && !diff; i += 8)
		diff = (a[i] ^ b[i]) | (a[i + 1] ^ b[i + 1]) |
		       (a[i + 2] ^ b[i + 2]) | (a[i + 3] ^ b[i + 3]) |
		       (a[i + 4] ^ b[i + 4]) | (a[i + 5] ^ b[i + 5]) |
		       (a[i + 6] ^ b[i + 6]) | (a[i + 7] ^ b[i + 7]);
	kunmap_local(b);
	kunmap_local(a);
	return !diff;
}

/**
 * upm_index_init_entry - prepare a KSM page's entry, not yet in the index
 * @entry: the entry
 */
void upm_index_init_entry(struct upm_index_entry *entry)
{
	entry->keyed = false;
	entry->indexed = false;
}

/**
 * upm_index_add - file a KSM page in the content index under its key
 * @entry: the page's entry, with its key set by upm_index_set_key()
 *
 * Called with ksm_thread_mutex held. Does nothing if the entry is in the
 * index already or has no key. At most UPM_MAX_CANDIDATES entries are kept
 * per key: beyond that a key is planted or a hash collides, and lookups
 * would not try them anyway. Failure (no memory for the index) is not an
 * error: the page only stays out of reach of later lookups.
 */
void upm_index_add(struct upm_index_entry *entry)
{
	struct upm_index_entry *found[UPM_MAX_CANDIDATES];

	if (!upm_index_ready || entry->indexed || !entry->keyed)
		return;
	if (upm_index_lookup(&entry->key, found, ARRAY_SIZE(found)) ==
	    ARRAY_SIZE(found))
		return;
	if (rhltable_insert(&upm_index, &entry->node, upm_index_params))
		return;
	entry->indexed = true;
	atomic_long_inc(&upm_index_entries);
}

/**
 * upm_index_set_key - record the key a KSM page is filed under
 * @entry: the page's entry
 * @key: the key of the page's content, taken while it is write-protected
 *
 * Called with ksm_thread_mutex held, before the entry is filed.
 */
void upm_index_set_key(struct upm_index_entry *entry,
		       const struct upm_key *key)
{
	if (WARN_ON_ONCE(entry->indexed))
		return;
	entry->key = *key;
	entry->keyed = true;
}

/**
 * upm_index_del - take a KSM page out of the content index
 * @entry: the page's entry, in the index or not; it keeps its key
 *
 * Called with ksm_thread_mutex held, before the entry is freed.
 */
void upm_index_del(struct upm_index_entry *entry)
{
	if (!entry->indexed)
		return;
	WARN_ON_ONCE(rhltable_remove(&upm_index, &entry->node,
				     upm_index_params));
	entry->indexed = false;
	atomic_long_dec(&upm_index_entries);
}

/*
 * Collect up to @max objects filed under @key in @table, whose link sits
 * @params.head_offset bytes into each. The caller holds ksm_thread_mutex.
 */
static int upm_table_lookup(struct rhltable *table,
			    const struct rhashtable_params params,
			    const struct upm_key *key, void **found, int max)
{
	struct rhlist_head *list, *pos;
	int n = 0;

	if (!upm_index_ready)
		return 0;
	rcu_read_lock();
	list = rhltable_lookup(table, key, params);
	rhl_for_each_rcu(pos, list) {
		if (n == max)
			break;
		found[n++] = (void *)pos - params.head_offset;
	}
	rcu_read_unlock();
	return n;
}

/**
 * upm_index_lookup - find KSM pages filed under a key
 * @key: the key of the content looked for
 * @found: array to fill with the entries found
 * @max: size of @found
 *
 * Called with ksm_thread_mutex held: the entries stay valid until it is
 * dropped, unless the caller itself frees them.
 *
 * Return: the number of entries stored in @found.
 */
int upm_index_lookup(const struct upm_key *key,
		     struct upm_index_entry **found, int max)
{
	return upm_table_lookup(&upm_index, upm_index_params, key,
				(void **)found, max);
}

/**
 * upm_candidate_add - file an advised page that matched nothing
 * @cand: the candidate link in the page's rmap_item
 * @key: the key of the page's content
 *
 * Called with ksm_thread_mutex held. At most UPM_MAX_CANDIDATES candidates
 * are kept per key, as in the content index.
 *
 * Return: true if filed; false if the key is full or no memory was left,
 * and the page cannot be found by its twin.
 */
bool upm_candidate_add(struct upm_candidate *cand, const struct upm_key *key)
{
	struct upm_candidate *found[UPM_MAX_CANDIDATES];

	if (upm_candidate_lookup(key, found, ARRAY_SIZE(found)) ==
	    ARRAY_SIZE(found))
		return false;
	cand->key = *key;
	if (rhltable_insert(&upm_candidates, &cand->node, upm_candidate_params))
		return false;
	atomic_long_inc(&upm_candidate_entries);
	return true;
}

/**
 * upm_candidate_del - take a candidate out of the candidate index
 * @cand: a candidate filed by upm_candidate_add()
 *
 * Called with ksm_thread_mutex held, or with the mmap_lock for write of
 * the mm whose page it records.
 */
void upm_candidate_del(struct upm_candidate *cand)
{
	WARN_ON_ONCE(rhltable_remove(&upm_candidates, &cand->node,
				     upm_candidate_params));
	atomic_long_dec(&upm_candidate_entries);
}

/**
 * upm_candidate_lookup - find candidates filed under a key
 * @key: the key of the content looked for
 * @found: array to fill with the candidates found
 * @max: size of @found
 *
 * Called with ksm_thread_mutex held, as upm_index_lookup().
 *
 * Return: the number of candidates stored in @found.
 */
int upm_candidate_lookup(const struct upm_key *key,
			 struct upm_candidate **found, int max)
{
	return upm_table_lookup(&upm_candidates, upm_candidate_params, key,
				(void **)found, max);
}

/**
 * upm_merge_allowed - tell whether MADV_UPM may merge now
 *
 * Return: 0; -EPERM when the administrator switched UPM off
 * (/sys/kernel/mm/upm/enabled is 0); -EBUSY while KSM is set to unmerge
 * everything (/sys/kernel/mm/ksm/run is 2).
 */
int upm_merge_allowed(void)
{
	if (!READ_ONCE(upm_enabled))
		return -EPERM;
	if (ksm_upm_unmerging())
		return -EBUSY;
	return 0;
}

/**
 * upm_merge_range - merge the anonymous pages of a range now (MADV_UPM)
 * @mm: the address space, the caller's or, through process_madvise(),
 *	another process's; its range was made VM_MERGEABLE already
 * @start: start of the range, page aligned
 * @end: end of the range, page aligned
 *
 * Takes mmap_lock for read in batches: must be called without it.
 *
 * Return: 0, -EINTR if a fatal signal arrived (the merges done so far stay
 * valid), -ENOMEM if memory for KSM's bookkeeping ran out, -ESRCH if the
 * process_madvise() target exited, or an error of upm_merge_allowed() if
 * merging was switched off during the call.
 */
int upm_merge_range(struct mm_struct *mm, unsigned long start,
		    unsigned long end)
{
	struct mem_cgroup *memcg = NULL, *old_memcg = NULL;
	struct upm_counts counts = {};
	ktime_t t0 = ktime_get();
	int err;

	/*
	 * Advised through process_madvise(): KSM's bookkeeping of the pages
	 * is charged to the target's memory cgroup, as the target's own
	 * call would be, not to the platform's tool.
	 */
	if (mm != current->mm) {
		memcg = get_mem_cgroup_from_mm(mm);
		old_memcg = set_active_memcg(memcg);
	}
	err = ksm_upm_merge(mm, start, end, &counts);
	if (mm != current->mm) {
		set_active_memcg(old_memcg);
		mem_cgroup_put(memcg);
	}

	atomic_long_inc(&upm_calls);
	atomic_long_add(counts.scanned, &upm_pages_scanned);
	atomic_long_add(counts.merged, &upm_pages_merged);
	atomic_long_add(counts.candidate, &upm_pages_candidate);
	atomic_long_add(counts.new_ksm, &upm_pages_new_ksm);
	atomic_long_add(counts.already_merged, &upm_pages_already_merged);
	atomic_long_add(counts.skipped, &upm_pages_skipped);
	atomic_long_add(counts.zero, &upm_pages_zero);
	atomic64_add(ktime_to_ns(ktime_sub(ktime_get(), t0)), &upm_time_ns);
	return err;
}

#ifdef CONFIG_SYSFS
#define UPM_COUNTER_ATTR(_name, _counter)				\
static ssize_t _name##_show(struct kobject *kobj,			\
			    struct kobj_attribute *attr, char *buf)	\
{									\
	return sysfs_emit(buf, "%ld\n", atomic_long_read(&(_counter)));	\
}									\
static struct kobj_attribute _name##_attr = __ATTR_RO(_name)

UPM_COUNTER_ATTR(calls, upm_calls);
UPM_COUNTER_ATTR(pages_scanned, upm_pages_scanned);
UPM_COUNTER_ATTR(pages_merged, upm_pages_merged);
UPM_COUNTER_ATTR(pages_candidate, upm_pages_candidate);
UPM_COUNTER_ATTR(pages_new_ksm, upm_pages_new_ksm);
UPM_COUNTER_ATTR(pages_already_merged, upm_pages_already_merged);
UPM_COUNTER_ATTR(pages_skipped, upm_pages_skipped);
UPM_COUNTER_ATTR(pages_zero, upm_pages_zero);
UPM_COUNTER_ATTR(index_entries, upm_index_entries);
UPM_COUNTER_ATTR(candidates, upm_candidate_entries);

static ssize_t time_ns_show(struct kobject *kobj, struct kobj_attribute *attr,
			    char *buf)
{
	return sysfs_emit(buf, "%lld\n", atomic64_read(&upm_time_ns));
}

static struct kobj_attribute time_ns_attr = __ATTR_RO(time_ns);

static ssize_t enabled_show(struct kobject *kobj, struct kobj_attribute *attr,
			    char *buf)
{
	return sysfs_emit(buf, "%d\n", READ_ONCE(upm_enabled));
}

static ssize_t enabled_store(struct kobject *kobj, struct kobj_attribute *attr,
			     const char *buf, size_t count)
{
	bool enabled;

	if (kstrtobool(buf, &enabled))
		return -EINVAL;
	WRITE_ONCE(upm_enabled, enabled);
	return count;
}

static struct kobj_attribute enabled_attr = __ATTR_RW(enabled);

static ssize_t default_domain_show(struct kobject *kobj,
				   struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n",
			  READ_ONCE(upm_default_global) ? "global" : "user");
}

static ssize_t default_domain_store(struct kobject *kobj,
				    struct kobj_attribute *attr,
				    const char *buf, size_t count)
{
	if (sysfs_streq(buf, "user"))
		WRITE_ONCE(upm_default_global, false);
	else if (sysfs_streq(buf, "global"))
		WRITE_ONCE(upm_default_global, true);
	else
		return -EINVAL;
	return count;
}

static struct kobj_attribute default_domain_attr = __ATTR_RW(default_domain);

/* Root only: how much each tenant shares is the tenant's business. */
static ssize_t domains_show(struct kobject *kobj, struct kobj_attribute *attr,
			    char *buf)
{
	return ksm_upm_domains_show(buf);
}

static struct kobj_attribute domains_attr = __ATTR_RO_MODE(domains, 0400);

static struct attribute *upm_attrs[] = {
	&enabled_attr.attr,
	&default_domain_attr.attr,
	&domains_attr.attr,
	&calls_attr.attr,
	&pages_scanned_attr.attr,
	&pages_merged_attr.attr,
	&pages_candidate_attr.attr,
	&pages_new_ksm_attr.attr,
	&pages_already_merged_attr.attr,
	&pages_skipped_attr.attr,
	&pages_zero_attr.attr,
	&time_ns_attr.attr,
	&index_entries_attr.attr,
	&candidates_attr.attr,
	NULL,
};

static const struct attribute_group upm_attr_group = {
	.attrs = upm_attrs,
	.name = "upm",
};

static int __init upm_sysfs_init(void)
{
	return sysfs_create_group(mm_kobj, &upm_attr_group);
}
#else
static inline int upm_sysfs_init(void)
{
	return 0;
}
#endif /* CONFIG_SYSFS */

static int __init upm_init(void)
{
	void *zero = kzalloc(PAGE_SIZE, GFP_KERNEL);
	int err;

	if (!zero)
		return -ENOMEM;
	upm_hash_seed = get_random_u64();
	upm_zero_hash = xxh64(zero, PAGE_SIZE, upm_hash_seed);
	kfree(zero);

	err = rhltable_init(&upm_index, &upm_index_params);
	if (err)
		return err;
	err = rhltable_init(&upm_candidates, &upm_candidate_params);
	if (err) {
		rhltable_destroy(&upm_index);
		return err;
	}
	upm_index_ready = true;
	return upm_sysfs_init();
}
subsys_initcall(upm_init);

// SPDX-License-Identifier: GPL-2.0
/*
 * User-guided page merging: madvise(MADV_UPM).
 *
 * A process that expects a range of its memory to be identical to memory of
 * other processes (a function runtime's model weights, say) advises it with
 * MADV_UPM. Before the call returns, every present anonymous page of the
 * range is merged with an identical KSM page, or becomes a KSM page that
 * later callers merge with. The merging itself is KSM's (see
 * ksm_upm_merge() in mm/ksm.c), so merged pages are KSM pages in every
 * respect; this file keeps the content index through which an identical
 * KSM page is found without walking the stable tree, and the statistics in
 * /sys/kernel/mm/upm/.
 */

#include <linux/highmem.h>
#include <linux/jiffies.h>
#include <linux/list.h>
#include <linux/kobject.h>
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/rhashtable.h>
#include <linux/string.h>
#include <linux/sysfs.h>
#include <linux/workqueue.h>
#include <linux/xxhash.h>

#include "upm.h"

/*
 * The content index: every KSM page that can take more sharers, filed under
 * the hash of its content. Updated and searched under ksm_thread_mutex only,
 * so entries can be freed as soon as they are unlinked.
 */
static const struct rhashtable_params upm_index_params = {
	.key_len = sizeof(struct upm_key),
	.key_offset = offsetof(struct upm_index_entry, key),
	.head_offset = offsetof(struct upm_index_entry, node),
	.automatic_shrinking = true,
};

static struct rhltable upm_index;
static bool upm_index_ready;
static u64 upm_zero_hash;

/*
 * The pages of an exited process stay KSM pages, and in the index, until
 * KSM finds them freed. Pruning walks this list of all entries, a batch at
 * a time, moving the live ones to the tail.
 */
static LIST_HEAD(upm_index_list);
static unsigned long upm_prune_left;	/* entries left in this pass */
static unsigned long upm_prune_gone;	/* entries found gone in this pass */
static unsigned long upm_prune_start;	/* jiffies when this pass started */
/* jiffies of the last exit of a process with KSM pages */
static unsigned long upm_last_exit = INITIAL_JIFFIES;
#define UPM_PRUNE_BATCH		4096
static void upm_prune_workfn(struct work_struct *work);
static DECLARE_DELAYED_WORK(upm_prune_work, upm_prune_workfn);

/* Totals over all calls, for /sys/kernel/mm/upm/. */
static atomic_long_t upm_calls;
static atomic_long_t upm_pages_scanned;
static atomic_long_t upm_pages_merged;
static atomic_long_t upm_pages_new_ksm;
static atomic_long_t upm_pages_already_merged;
static atomic_long_t upm_pages_skipped;
static atomic_long_t upm_pages_zero;
static atomic64_t upm_time_ns;
static atomic_long_t upm_index_entries;

/**
 * upm_page_key - compute the content index key of a page
 * @page: the page; its content should be stable (write-protected) for the
 *        key to stay true, but a stale key only costs a missed merge
 * @key: where to store the key
 */
void upm_page_key(struct page *page, struct upm_key *key)
{
	void *addr = kmap_local_page(page);

	key->hash = xxh64(addr, PAGE_SIZE, 0);
	kunmap_local(addr);
}

/**
 * upm_key_is_zero - tell whether a page with this key is filled with zeroes
 * @key: the page's key, from upm_page_key()
 * @page: the page, read only when the key matches that of a zero page
 *
 * Return: true if every byte of @page is zero.
 */
bool upm_key_is_zero(const struct upm_key *key, struct page *page)
{
	void *addr;
	bool zero;

	if (key->hash != upm_zero_hash)
		return false;
	addr = kmap_local_page(page);
	zero = !memchr_inv(addr, 0, PAGE_SIZE);
	kunmap_local(addr);
	return zero;
}

/**
 * upm_index_init_entry - prepare a KSM page's entry, not yet in the index
 * @entry: the entry
 */
void upm_index_init_entry(struct upm_index_entry *entry)
{
	entry->indexed = false;
}

/**
 * upm_index_add - file a KSM page in the content index
 * @entry: the page's entry, not in the index
 * @key: the key of the page's content
 *
 * Called with ksm_thread_mutex held. Failure (no memory for the index) is
 * not an error: the page only stays out of reach of later lookups.
 */
void upm_index_add(struct upm_index_entry *entry, const struct upm_key *key)
{
	if (!upm_index_ready || entry->indexed)
		return;
	entry->key = *key;
	if (rhltable_insert(&upm_index, &entry->node, upm_index_params))
		return;
	entry->indexed = true;
	list_add_tail(&entry->list, &upm_index_list);
	atomic_long_inc(&upm_index_entries);
}

/**
 * upm_index_del - take a KSM page out of the content index
 * @entry: the page's entry, in the index or not
 *
 * Called with ksm_thread_mutex held, before the entry is freed.
 */
void upm_index_del(struct upm_index_entry *entry)
{
	if (!entry->indexed)
		return;
	WARN_ON_ONCE(rhltable_remove(&upm_index, &entry->node,
				     upm_index_params));
	list_del(&entry->list);
	entry->indexed = false;
	atomic_long_dec(&upm_index_entries);
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
	struct upm_index_entry *entry;
	struct rhlist_head *list, *pos;
	int n = 0;

	if (!upm_index_ready)
		return 0;
	rcu_read_lock();
	list = rhltable_lookup(&upm_index, key, upm_index_params);
	rhl_for_each_entry_rcu(entry, pos, list, node) {
		if (n == max)
			break;
		found[n++] = entry;
	}
	rcu_read_unlock();
	return n;
}

/**
 * upm_index_prune - drop the index entries of KSM pages that are gone
 * @alive: tells whether an entry's page is still a KSM page; if not, it
 *         frees the page's stable node, which takes the entry out
 * @budget: how many entries to check at most
 *
 * Called with ksm_thread_mutex held. A pass checks every entry that was
 * in the index when it started; it may take several calls.
 *
 * Return: UPM_PRUNE_CONTINUE while the pass is not over; at its end,
 * UPM_PRUNE_REPEAT if it found pages gone or began within a second of a
 * process exit, else UPM_PRUNE_DONE.
 */
enum upm_prune_state
upm_index_prune(bool (*alive)(struct upm_index_entry *entry),
		unsigned long budget)
{
	struct upm_index_entry *entry;

	if (!upm_prune_left) {
		upm_prune_left = atomic_long_read(&upm_index_entries);
		upm_prune_gone = 0;
		upm_prune_start = jiffies;
	}
	while (upm_prune_left && budget--) {
		entry = list_first_entry_or_null(&upm_index_list,
						 struct upm_index_entry, list);
		if (!entry) {
			upm_prune_left = 0;
			break;
		}
		upm_prune_left--;
		if (alive(entry))
			list_move_tail(&entry->list, &upm_index_list);
		else
			upm_prune_gone++;
		cond_resched();
	}
	if (upm_prune_left)
		return UPM_PRUNE_CONTINUE;
	/* A pass begun within a second of an exit may have come too early. */
	if (upm_prune_gone ||
	    time_before(upm_prune_start, READ_ONCE(upm_last_exit) + HZ))
		return UPM_PRUNE_REPEAT;
	return UPM_PRUNE_DONE;
}

static void upm_prune_workfn(struct work_struct *work)
{
	switch (ksm_upm_prune(UPM_PRUNE_BATCH)) {
	case UPM_PRUNE_CONTINUE:
		queue_delayed_work(system_unbound_wq, &upm_prune_work, 1);
		break;
	case UPM_PRUNE_REPEAT:
		/* An exiting process may still be freeing its pages. */
		queue_delayed_work(system_unbound_wq, &upm_prune_work, HZ);
		break;
	case UPM_PRUNE_DONE:
		break;
	}
}

/**
 * upm_schedule_prune - prune the index soon, after a process with KSM
 * pages exited
 *
 * The exiting process unmaps its pages only after KSM let it go: wait a
 * second for that before checking which pages are gone, and check again
 * while a pass finds some gone. A pass already due may start sooner, so it
 * repeats when it began within a second of the exit.
 */
void upm_schedule_prune(void)
{
	if (atomic_long_read(&upm_index_entries)) {
		WRITE_ONCE(upm_last_exit, jiffies);
		queue_delayed_work(system_unbound_wq, &upm_prune_work, HZ);
	}
}

/**
 * upm_merge_range - merge the anonymous pages of a range now (MADV_UPM)
 * @mm: the address space; its range was made VM_MERGEABLE already
 * @start: start of the range, page aligned
 * @end: end of the range, page aligned
 *
 * Takes mmap_lock for read in batches: must be called without it.
 *
 * Return: 0, -EINTR if a fatal signal arrived (the merges done so far stay
 * valid), or -ENOMEM if memory for KSM's bookkeeping ran out.
 */
int upm_merge_range(struct mm_struct *mm, unsigned long start,
		    unsigned long end)
{
	struct upm_counts counts = {};
	ktime_t t0 = ktime_get();
	int err;

	err = ksm_upm_merge(mm, start, end, &counts);

	atomic_long_inc(&upm_calls);
	atomic_long_add(counts.scanned, &upm_pages_scanned);
	atomic_long_add(counts.merged, &upm_pages_merged);
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
UPM_COUNTER_ATTR(pages_new_ksm, upm_pages_new_ksm);
UPM_COUNTER_ATTR(pages_already_merged, upm_pages_already_merged);
UPM_COUNTER_ATTR(pages_skipped, upm_pages_skipped);
UPM_COUNTER_ATTR(pages_zero, upm_pages_zero);
UPM_COUNTER_ATTR(index_entries, upm_index_entries);

static ssize_t time_ns_show(struct kobject *kobj, struct kobj_attribute *attr,
			    char *buf)
{
	return sysfs_emit(buf, "%lld\n", atomic64_read(&upm_time_ns));
}

static struct kobj_attribute time_ns_attr = __ATTR_RO(time_ns);

static struct attribute *upm_attrs[] = {
	&calls_attr.attr,
	&pages_scanned_attr.attr,
	&pages_merged_attr.attr,
	&pages_new_ksm_attr.attr,
	&pages_already_merged_attr.attr,
	&pages_skipped_attr.attr,
	&pages_zero_attr.attr,
	&time_ns_attr.attr,
	&index_entries_attr.attr,
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
	upm_zero_hash = xxh64(zero, PAGE_SIZE, 0);
	kfree(zero);

	err = rhltable_init(&upm_index, &upm_index_params);
	if (err)
		return err;
	upm_index_ready = true;
	return upm_sysfs_init();
}
subsys_initcall(upm_init);
